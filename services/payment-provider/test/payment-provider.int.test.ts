import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { spawnPaymentProvider, type PaymentProviderProcess } from '../src/mod.ts';

// One real PSP process for the file; every test uses its own references and idempotency keys.
let psp: PaymentProviderProcess;
before(async () => {
  psp = await spawnPaymentProvider({ faults: { hangMs: 5_000 } });
});
after(async () => {
  await psp.dispose();
});

async function post(path: string, key: string, body: unknown, timeoutMs = 5_000) {
  const response = await fetch(`${psp.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return {
    status: response.status,
    replayed: response.headers.get('idempotent-replayed') === 'true',
    body: (await response.json()) as Record<string, unknown>,
  };
}

const chargeBody = (reference: string, token = 'tok_visa') => ({
  amount: 2500,
  currency: 'EUR',
  token,
  reference,
});

describe('payment provider over HTTP', () => {
  test('same key and body charge once; another body under the key is a 409', async () => {
    const reference = randomUUID();
    const first = await post('/v1/charges', reference, chargeBody(reference));
    const second = await post('/v1/charges', reference, chargeBody(reference));
    assert.equal(first.status, 201);
    assert.deepEqual(second, { ...first, replayed: true });
    const conflict = await post('/v1/charges', reference, { ...chargeBody(reference), amount: 1 });
    assert.equal(conflict.status, 409);
    assert.deepEqual(
      conflict.body.error && (conflict.body.error as { code: string }).code,
      'idempotency_key_reused',
    );
    assert.equal((await psp.ledger({ reference })).length, 1);
  });

  test('concurrent requests with one key record one charge', async () => {
    const reference = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => post('/v1/charges', reference, chargeBody(reference))),
    );
    assert.ok(results.every((r) => r.status === 201 || r.status === 409));
    assert.equal((await psp.ledger({ reference, kind: 'charge' })).length, 1);
  });

  test('tok_decline answers 402 and replays it', async () => {
    const reference = randomUUID();
    const first = await post('/v1/charges', reference, chargeBody(reference, 'tok_decline'));
    const again = await post('/v1/charges', reference, chargeBody(reference, 'tok_decline'));
    assert.equal(first.status, 402);
    assert.equal(again.status, 402);
    assert.equal(again.replayed, true);
  });

  test('a refund happens once per key, and a second refund of the charge is refused', async () => {
    const reference = randomUUID();
    const charge = await post('/v1/charges', reference, chargeBody(reference));
    const refund = await post('/v1/refunds', `refund-${reference}`, { charge: charge.body.id });
    const replay = await post('/v1/refunds', `refund-${reference}`, { charge: charge.body.id });
    const other = await post('/v1/refunds', `other-${reference}`, { charge: charge.body.id });
    assert.equal(refund.status, 201);
    assert.equal(replay.replayed, true);
    assert.equal(other.status, 400);
    assert.equal((await psp.ledger({ reference, kind: 'refund' })).length, 1);
  });

  test('tok_timeout does not answer within the client timeout and charges nothing', async () => {
    const reference = randomUUID();
    await assert.rejects(post('/v1/charges', reference, chargeBody(reference, 'tok_timeout'), 300), {
      name: 'TimeoutError',
    });
    assert.equal((await psp.ledger({ reference })).length, 0);
  });

  test('a 5xx burst switched on at run time fails the next requests without recording them', async () => {
    const reference = randomUUID();
    await psp.setFaults({ failNextRequests: 2 });
    assert.equal((await post('/v1/charges', reference, chargeBody(reference))).status, 503);
    assert.equal((await post('/v1/charges', reference, chargeBody(reference))).status, 503);
    assert.equal((await post('/v1/charges', reference, chargeBody(reference))).status, 201);
    assert.equal((await psp.ledger({ reference })).length, 1);
  });

  test('errors after commit: the retry with the same key gets the recorded charge', async () => {
    const reference = randomUUID();
    await psp.setFaults({ errorAfterCommitRate: 1 });
    const first = await post('/v1/charges', reference, chargeBody(reference));
    await psp.setFaults({ errorAfterCommitRate: 0 });
    const retry = await post('/v1/charges', reference, chargeBody(reference));
    assert.equal(first.status, 500);
    assert.equal(retry.status, 201);
    assert.equal(retry.replayed, true);
    assert.equal((await psp.ledger({ reference })).length, 1);
  });

  test('invalid input gets a 400 listing the problems', async () => {
    const result = await post('/v1/charges', randomUUID(), {
      amount: 1.5,
      currency: 'EUR',
      token: 'tok_visa',
      reference: 'x',
    });
    assert.equal(result.status, 400);
    assert.equal((result.body.error as { code: string }).code, 'invalid_request');
  });
});

test('the ledger survives a restart', async () => {
  const first = await spawnPaymentProvider();
  const reference = randomUUID();
  const body = JSON.stringify(chargeBody(reference));
  const headers = { 'content-type': 'application/json', 'idempotency-key': reference };
  const charged = await fetch(`${first.url}/v1/charges`, { method: 'POST', headers, body });
  assert.equal(charged.status, 201);
  await first.stop();
  const second = await spawnPaymentProvider({ dataDir: first.dataDir });
  try {
    const replay = await fetch(`${second.url}/v1/charges`, { method: 'POST', headers, body });
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal((await second.ledger({ reference })).length, 1);
  } finally {
    await second.dispose();
  }
});
