import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_ALGORITHM, DevIssuer, ensureDevSigningKey, JwtAuthenticator } from '../src/mod.ts';

/**
 * A development issuer on a real key file in a temporary directory, and the authenticator that trusts
 * it: what `orderflow up` gives a gateway. `dispose()` removes the directory.
 */
export interface TestAuth {
  readonly issuer: DevIssuer;
  readonly authenticator: JwtAuthenticator;
  readonly keyFile: string;
  /** `{ authorization: 'Bearer …' }` for `customerId`. */
  customer(customerId: string): Promise<Record<string, string>>;
  /** `{ authorization: 'Bearer …' }` of an operator. */
  operator(): Promise<Record<string, string>>;
  dispose(): Promise<void>;
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

export async function testAuth(): Promise<TestAuth> {
  const dir = await mkdtemp(join(tmpdir(), 'orderflow-auth-'));
  const keyFile = await ensureDevSigningKey(join(dir, 'auth', 'dev-signing-key.jwk'));
  const issuer = await DevIssuer.open(keyFile);
  const authenticator = new JwtAuthenticator({
    keys: { jwks: issuer.jwks },
    issuer: issuer.issuer,
    audience: issuer.audience,
    algorithms: [DEV_ALGORITHM],
  });
  return {
    issuer,
    authenticator,
    keyFile,
    customer: async (customerId) => bearer(await issuer.customerToken(customerId)),
    operator: async () => bearer(await issuer.operatorToken('operator:test')),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
