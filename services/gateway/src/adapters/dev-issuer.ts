import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { calculateJwkThumbprint, importJWK, SignJWT, type JSONWebKeySet, type JWK } from 'jose';
import { OPERATOR_SCOPE } from '../domain/access.ts';
import { DevKeyError } from '../errors.ts';

/**
 * The development identity provider: an Ed25519 key pair in one file (a private JWK, mode 0600) that
 * `orderflow up` creates under `DATA_DIR` and reuses on restart. The gateway signs a token for each new
 * customer with it (`POST /customers`) and verifies tokens against its public half; `orderflow token
 * --operator` signs an operator token with it. Whoever can read the file can act as anyone: it is for
 * development and demos only — in production the gateway trusts an issuer's JWKS instead.
 */

/** `iss` of development tokens. */
export const DEV_ISSUER = 'urn:orderflow:dev';
/** Default `aud` of the gateway's tokens (development and production). */
export const DEFAULT_AUDIENCE = 'orderflow-api';
/** The one algorithm development tokens use and the gateway accepts from the development key. */
export const DEV_ALGORITHM = 'EdDSA';

interface PrivateJwk extends JWK {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly d: string;
  readonly x: string;
  readonly kid: string;
}

function isPrivateJwk(value: unknown): value is PrivateJwk {
  const v = value as Record<string, unknown> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    v.kty === 'OKP' &&
    v.crv === 'Ed25519' &&
    typeof v.d === 'string' &&
    typeof v.x === 'string' &&
    typeof v.kid === 'string'
  );
}

/**
 * Creates the key file at `path` unless it exists (mode 0600, its directory 0700); returns its path.
 * Concurrent callers agree on one key (the file is linked into place, never overwritten).
 */
export async function ensureDevSigningKey(path: string): Promise<string> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await readDevSigningKey(path);
    return path;
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== 'ENOENT') throw error;
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x ?? '' });
  const body = `${JSON.stringify({ ...jwk, kid, alg: DEV_ALGORITHM, use: 'sig' }, null, 2)}\n`;
  const temporary = `${path}.${randomUUID()}.tmp`;
  await writeFile(temporary, body, { mode: 0o600, flag: 'wx' });
  try {
    await link(temporary, path);
  } catch (error) {
    if ((error as { code?: string }).code !== 'EEXIST') throw error;
  } finally {
    await unlink(temporary);
  }
  await readDevSigningKey(path);
  return path;
}

/** Reads the private key; refuses a file that others may read, or one that is not an Ed25519 JWK. */
export async function readDevSigningKey(path: string): Promise<PrivateJwk> {
  let text: string;
  let mode: number;
  try {
    [text, mode] = await Promise.all([readFile(path, 'utf8'), stat(path).then((s) => s.mode)]);
  } catch (error) {
    throw new DevKeyError(path, 'cannot be read', { cause: error });
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new DevKeyError(path, `is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DevKeyError(path, 'is not JSON', { cause: error });
  }
  if (!isPrivateJwk(parsed)) throw new DevKeyError(path, 'is not an Ed25519 private JWK with a kid');
  return parsed;
}

export interface DevIssuerOptions {
  /** `iss` (default {@link DEV_ISSUER}). */
  issuer?: string;
  /** `aud` (default {@link DEFAULT_AUDIENCE}). */
  audience?: string;
  /** Lifetime of a customer token (default 86 400 s). */
  customerTokenTtlS?: number;
  /** Lifetime of an operator token (default 28 800 s). */
  operatorTokenTtlS?: number;
  /** Time of issue (default now). */
  clock?: () => Date;
}

/** Signs development tokens with the key file; its public key set is what the gateway trusts. */
export class DevIssuer {
  private constructor(
    private readonly key: Awaited<ReturnType<typeof importJWK>>,
    private readonly kid: string,
    /** The public key set (no private part) to verify this issuer's tokens with. */
    readonly jwks: JSONWebKeySet,
    readonly issuer: string,
    readonly audience: string,
    private readonly options: Required<
      Pick<DevIssuerOptions, 'customerTokenTtlS' | 'operatorTokenTtlS' | 'clock'>
    >,
  ) {}

  static async open(path: string, options: DevIssuerOptions = {}): Promise<DevIssuer> {
    const jwk = await readDevSigningKey(path);
    const { d: _private, ...publicJwk } = jwk;
    const key = await importJWK(jwk, DEV_ALGORITHM);
    return new DevIssuer(
      key,
      jwk.kid,
      { keys: [{ ...publicJwk, alg: DEV_ALGORITHM, use: 'sig' }] },
      options.issuer ?? DEV_ISSUER,
      options.audience ?? DEFAULT_AUDIENCE,
      {
        customerTokenTtlS: options.customerTokenTtlS ?? 86_400,
        operatorTokenTtlS: options.operatorTokenTtlS ?? 28_800,
        clock: options.clock ?? (() => new Date()),
      },
    );
  }

  /** A token for `customerId` (its `sub`). */
  customerToken(customerId: string): Promise<string> {
    return this.#sign({ scope: 'orders' }, customerId, this.options.customerTokenTtlS);
  }

  /** A token with the operator scope; `subject` names who holds it (e.g. `operator:ada`). */
  operatorToken(subject: string): Promise<string> {
    return this.#sign({ scope: OPERATOR_SCOPE }, subject, this.options.operatorTokenTtlS);
  }

  #sign(claims: Record<string, string>, subject: string, ttlS: number): Promise<string> {
    const now = Math.floor(this.options.clock().getTime() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: DEV_ALGORITHM, kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(this.audience)
      .setSubject(subject)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlS)
      .sign(this.key);
  }
}
