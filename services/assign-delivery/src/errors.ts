import { MessagingError } from '@orderflow/messaging';

export const DeliveryErrorCode = {
  /** `payment.authorized` came before this service stored the order's `order.placed`: retried later. */
  OrderUnknown: 'DELIVERY_ORDER_UNKNOWN',
} as const;

export class AssignDeliveryError extends MessagingError {
  override name = 'AssignDeliveryError';
}
