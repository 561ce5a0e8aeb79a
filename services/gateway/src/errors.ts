import { MessagingError } from '@orderflow/messaging';

/** Stable codes of the gateway's own errors. */
export const GatewayErrorCode = {
  /** The bearer token is missing, malformed, expired, or not signed by a trusted key of the issuer. */
  InvalidToken: 'INVALID_TOKEN',
  /** The issuer's keys (JWKS) could not be fetched: the caller may retry. */
  AuthUnavailable: 'AUTH_UNAVAILABLE',
  /** The development signing key file is unusable (unreadable, not a key, readable by others). */
  DevKey: 'DEV_KEY_INVALID',
} as const;
export type GatewayErrorCode = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode];

/**
 * A bearer token was refused (`INVALID_TOKEN` → 401) or could not be checked (`AUTH_UNAVAILABLE` →
 * 503). The message is safe to show the caller: it says what is wrong, never the token.
 */
export class AuthenticationError extends MessagingError {
  override name = 'AuthenticationError';
  constructor(
    override readonly code: typeof GatewayErrorCode.InvalidToken | typeof GatewayErrorCode.AuthUnavailable,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The development signing key file cannot be used. */
export class DevKeyError extends MessagingError {
  override name = 'DevKeyError';
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(GatewayErrorCode.DevKey, `${path}: ${message}`, options);
  }
}
