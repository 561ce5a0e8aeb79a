import { ID_PATTERN } from '@orderflow/contracts';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { OPERATOR_SCOPE, type Principal } from '../domain/access.ts';
import { AuthenticationError, GatewayErrorCode } from '../errors.ts';

/** Turns a bearer token into the principal it proves, or refuses it. */
export interface Authenticator {
  /**
   * The principal of `token` (the part after `Bearer `). Rejects with an {@link AuthenticationError}:
   * `INVALID_TOKEN` when the token is not acceptable, `AUTH_UNAVAILABLE` when the issuer's keys could
   * not be fetched.
   */
  authenticate(token: string): Promise<Principal>;
}

/** Asymmetric JWS algorithms a verifier may be pinned to (never `none`, never a shared secret). */
export const ASYMMETRIC_ALGORITHMS = [
  'EdDSA',
  'Ed25519',
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export interface JwtAuthenticatorOptions {
  /** Where the issuer's public keys come from: its JWKS URL, or a key set given here (development). */
  keys: { jwksUrl: URL } | { jwks: JSONWebKeySet };
  /** Required `iss`. */
  issuer: string;
  /** Required `aud` (the token must name this audience). */
  audience: string;
  /** The only algorithms accepted (the token's `alg` header must be one). */
  algorithms: readonly AsymmetricAlgorithm[];
  /** Claim that holds the customer id (default `sub`). */
  customerClaim?: string;
  /** Scope (in `scope`, space-separated) that makes the caller an operator (default `orderflow:operator`). */
  operatorScope?: string;
  /** Leeway for `exp`/`nbf`/`iat` (default 30 s). */
  clockToleranceS?: number;
  /** Time a JWKS fetch may take (default 5000 ms). */
  jwksTimeoutMs?: number;
}

// Failures that say the token is bad (→ 401); anything else means the keys could not be fetched.
const TOKEN_FAULTS = new Set<string>([
  errors.JWTExpired.code,
  errors.JWTClaimValidationFailed.code,
  errors.JWSSignatureVerificationFailed.code,
  errors.JWSInvalid.code,
  errors.JWTInvalid.code,
  errors.JOSEAlgNotAllowed.code,
  errors.JOSENotSupported.code,
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
  errors.JWKInvalid.code,
]);

const ID = new RegExp(ID_PATTERN);

/** What a caller may be told about a refused token (never the token itself). */
function reasonOf(error: errors.JOSEError): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed)
    return `the token's "${error.claim}" claim is not acceptable (${error.reason})`;
  if (error instanceof errors.JOSEAlgNotAllowed)
    return 'the token is signed with an algorithm not accepted here';
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWSSignatureVerificationFailed)
    return 'the token is not signed by a trusted key of the issuer';
  return 'the token is malformed';
}

/**
 * Verifies bearer JWTs with `jose`: signature by a key of the issuer, the pinned algorithms, `iss`,
 * `aud`, and a required `exp` (a token without expiry is refused). A customer's id is the
 * `customerClaim`; a token whose `scope` holds the operator scope is an operator's.
 */
export class JwtAuthenticator implements Authenticator {
  readonly #keys: JWTVerifyGetKey;
  readonly #options: Required<Omit<JwtAuthenticatorOptions, 'keys'>>;

  constructor(options: JwtAuthenticatorOptions) {
    this.#options = {
      customerClaim: 'sub',
      operatorScope: OPERATOR_SCOPE,
      clockToleranceS: 30,
      jwksTimeoutMs: 5_000,
      ...options,
    } satisfies Required<Omit<JwtAuthenticatorOptions, 'keys'>>;
    this.#keys =
      'jwksUrl' in options.keys
        ? createRemoteJWKSet(options.keys.jwksUrl, { timeoutDuration: this.#options.jwksTimeoutMs })
        : createLocalJWKSet(options.keys.jwks);
  }

  async authenticate(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keys, {
        issuer: this.#options.issuer,
        audience: this.#options.audience,
        algorithms: [...this.#options.algorithms],
        requiredClaims: ['exp'],
        clockTolerance: this.#options.clockToleranceS,
      }));
    } catch (error) {
      if (error instanceof errors.JOSEError && TOKEN_FAULTS.has(error.code))
        throw new AuthenticationError(GatewayErrorCode.InvalidToken, reasonOf(error), { cause: error });
      throw new AuthenticationError(
        GatewayErrorCode.AuthUnavailable,
        "the issuer's keys could not be fetched; try again later",
        { cause: error },
      );
    }
    const subject = typeof payload.sub === 'string' ? payload.sub : '';
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    if (scopes.includes(this.#options.operatorScope)) {
      if (subject === '')
        throw new AuthenticationError(GatewayErrorCode.InvalidToken, 'the token has no "sub" claim');
      return { kind: 'operator', subject };
    }
    const customerId = payload[this.#options.customerClaim];
    if (typeof customerId !== 'string' || !ID.test(customerId)) {
      throw new AuthenticationError(
        GatewayErrorCode.InvalidToken,
        `the token's "${this.#options.customerClaim}" claim is not a customer id`,
      );
    }
    return { kind: 'customer', customerId, subject: subject || customerId };
  }
}
