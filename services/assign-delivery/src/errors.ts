import { MessagingError } from '@orderflow/messaging';

export const DeliveryErrorCode = {
  /** `payment.authorized` came before this service stored the order's `order.placed`: retried later. */
  OrderUnknown: 'DELIVERY_ORDER_UNKNOWN',
  Config: 'INVALID_CONFIG',
} as const;

export class AssignDeliveryError extends MessagingError {
  override name = 'AssignDeliveryError';
}

export class ConfigError extends MessagingError {
  override name = 'ConfigError';
  constructor(readonly issues: readonly string[]) {
    super(DeliveryErrorCode.Config, `invalid configuration: ${issues.join('; ')}`);
  }
}
