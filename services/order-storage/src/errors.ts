import { MessagingError } from '@orderflow/messaging';

export const OrderStorageErrorCode = {
  Config: 'INVALID_CONFIG',
} as const;

/** The configuration read from the environment is invalid; lists every problem at once. */
export class ConfigError extends MessagingError {
  override name = 'ConfigError';
  constructor(readonly issues: readonly string[]) {
    super(OrderStorageErrorCode.Config, `invalid configuration: ${issues.join('; ')}`);
  }
}
