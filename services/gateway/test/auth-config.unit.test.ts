import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '@orderflow/messaging';
import {
  configFromEnv,
  DEV_ALGORITHM,
  DevIssuer,
  DevKeyError,
  ensureDevSigningKey,
  JwtAuthenticator,
} from '../src/mod.ts';

// The development key file (real files in a temporary directory) and the gateway's settings.
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orderflow-devkey-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('the development signing key', () => {
  test('is made once with mode 0600 (its directory 0700) and reused: tokens stay valid across restarts', async () => {
    const path = join(dir, 'auth', 'dev-signing-key.jwk');
    await ensureDevSigningKey(path);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'auth'))).mode & 0o777, 0o700);
    const first = await readFile(path, 'utf8');
    const token = await (await DevIssuer.open(path)).customerToken('c-1');
    await Promise.all([ensureDevSigningKey(path), ensureDevSigningKey(path)]);
    assert.equal(await readFile(path, 'utf8'), first, 'the key is not replaced');
    const issuer = await DevIssuer.open(path);
    const verifier = new JwtAuthenticator({
      keys: { jwks: issuer.jwks },
      issuer: issuer.issuer,
      audience: issuer.audience,
      algorithms: [DEV_ALGORITHM],
    });
    assert.deepEqual(await verifier.authenticate(token), {
      kind: 'customer',
      customerId: 'c-1',
      subject: 'c-1',
    });
    assert.equal(JSON.stringify(issuer.jwks).includes('"d"'), false, 'the key set has no private part');
  });

  test('concurrent first starts agree on one key', async () => {
    const path = join(dir, 'race', 'key.jwk');
    await Promise.all(Array.from({ length: 5 }, () => ensureDevSigningKey(path)));
    const issuer = await DevIssuer.open(path);
    assert.equal(issuer.jwks.keys.length, 1);
  });

  test('a key file others may read, or that is not a key, is refused with DEV_KEY_INVALID', async () => {
    const path = join(dir, 'loose.jwk');
    await ensureDevSigningKey(path);
    await chmod(path, 0o644);
    await assert.rejects(DevIssuer.open(path), (error: unknown) => {
      assert.ok(error instanceof DevKeyError);
      assert.equal(error.code, 'DEV_KEY_INVALID');
      assert.match(error.message, /readable by others/);
      return true;
    });
    const junk = join(dir, 'junk.jwk');
    await writeFile(junk, '{"kty":"oct","k":"c2VjcmV0"}', { mode: 0o600 });
    await assert.rejects(DevIssuer.open(junk), /not an Ed25519 private JWK/);
  });
});

describe('gateway settings', () => {
  const dev = { AUTH_DEV_KEY_FILE: '/data/auth/dev-signing-key.jwk' };

  test('secure defaults: bound to 127.0.0.1, no HSTS, limits and timeouts set', () => {
    const config = configFromEnv(dev);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.hstsMaxAgeS, undefined);
    assert.deepEqual(config.auth, {
      kind: 'development',
      keyFile: dev.AUTH_DEV_KEY_FILE,
      issuer: 'urn:orderflow:dev',
      audience: 'orderflow-api',
      customerTokenTtlS: 86_400,
      clockToleranceS: 30,
    });
    assert.deepEqual(config.limits.writes, { ratePerS: 20, burst: 40 });
    assert.equal(config.timeouts.headersTimeoutMs, 10_000);
  });

  test('an identity provider: JWKS URL, issuer and audience; asymmetric algorithms only', () => {
    const config = configFromEnv({
      AUTH_JWKS_URL: 'https://id.example/.well-known/jwks.json',
      AUTH_ISSUER: 'https://id.example/',
      AUTH_AUDIENCE: 'orderflow',
      AUTH_ALGORITHMS: 'ES256, RS256',
    });
    assert.equal(config.auth.kind, 'issuer');
    assert.deepEqual(config.auth.kind === 'issuer' && config.auth.algorithms, ['ES256', 'RS256']);
  });

  test('every problem at once: no authentication, both kinds, HS256, no issuer, plain http far away', () => {
    const issues = (env: Record<string, string>) => {
      try {
        configFromEnv(env);
        return [];
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return [...error.issues];
      }
    };
    assert.match(issues({}).join(), /no authentication configured/);
    assert.match(issues({ ...dev, AUTH_JWKS_URL: 'https://id.example/jwks' }).join(), /not both/);
    const bad = issues({ AUTH_JWKS_URL: 'http://id.example/jwks', AUTH_ALGORITHMS: 'HS256,none' });
    assert.match(bad.join(), /must be https/);
    assert.match(bad.join(), /AUTH_ISSUER is required/);
    assert.match(bad.join(), /AUTH_AUDIENCE is required/);
    assert.match(bad.join(), /HS256, none not accepted/);
    assert.match(issues({ ...dev, HTTP_HEADERS_TIMEOUT_MS: '60000' }).join(), /must not exceed/);
  });

  test("the console's links: a trace URL template with {traceId}, the mailbox and the PSP", () => {
    assert.deepEqual(configFromEnv(dev).console, {});
    const config = configFromEnv({
      ...dev,
      ORDERFLOW_TRACE_URL: 'http://127.0.0.1:16686/trace/{traceId}',
      MAILBOX_URL: 'http://127.0.0.1:8025',
      PSP_URL: 'http://127.0.0.1:4010',
    });
    assert.deepEqual(config.console, {
      traceUrl: 'http://127.0.0.1:16686/trace/{traceId}',
      mailboxUrl: 'http://127.0.0.1:8025',
      pspUrl: 'http://127.0.0.1:4010',
    });
    assert.throws(
      () => configFromEnv({ ...dev, ORDERFLOW_TRACE_URL: 'http://jaeger/trace', MAILBOX_URL: 'mailbox' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.issues.join(), /ORDERFLOW_TRACE_URL must contain \{traceId\}/);
        assert.match(error.issues.join(), /MAILBOX_URL is not a URL/);
        return true;
      },
    );
  });
});
