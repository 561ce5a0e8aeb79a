import { MessagingError } from '@orderflow/messaging';

/** The configuration read from the environment is invalid; lists every problem at once. */
export class ConfigError extends MessagingError {
  override name = 'ConfigError';
  constructor(readonly issues: readonly string[]) {
    super('INVALID_CONFIG', `invalid configuration: ${issues.join('; ')}`);
  }
}
