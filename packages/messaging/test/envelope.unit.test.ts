import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MsgHdrsImpl } from '@nats-io/nats-core';
import { Type } from '@sinclair/typebox';
import {
  ContractRegistry,
  createEnvelope,
  decodeEnvelope,
  defineEvent,
  encodeData,
  envelopeHeaders,
  retryDelay,
  ValidationError,
} from '../src/mod.ts';

const V1 = defineEvent({ name: 'thing.done', schema: Type.Object({ id: Type.String() }) });
const V2 = defineEvent({
  name: 'thing.done',
  version: 2,
  schema: Type.Object({ id: Type.String(), at: Type.String() }),
});

test('given a caused-by message, when an envelope is created, then correlation, causation and trace carry over', () => {
  const parent = createEnvelope({ type: V1.type, source: 'test', data: { id: '1' } });
  const child = createEnvelope({ type: V1.type, source: 'test', data: { id: '2' }, causedBy: parent });
  assert.equal(child.correlationId, parent.id);
  assert.equal(child.causationId, parent.id);
  assert.equal(child.traceparent?.slice(3, 35), parent.traceparent?.slice(3, 35), 'same trace id');
  assert.notEqual(child.traceparent, parent.traceparent, 'new span id');
});

test('an envelope survives the round trip through binary-mode headers', () => {
  const envelope = createEnvelope({
    type: V1.type,
    source: 'orderflow/test',
    subject: 'order-1',
    data: { id: '1' },
  });
  const headers = envelopeHeaders(envelope);
  assert.equal(headers.get('Nats-Msg-Id'), envelope.id);
  assert.equal(headers.get('ce-specversion'), '1.0');
  const decoded = decodeEnvelope(headers, new TextEncoder().encode(encodeData(envelope.data)));
  assert.deepEqual(decoded, envelope);
});

test('envelope headers go on the wire exactly as nats.js would encode them', () => {
  const envelope = createEnvelope({
    type: V1.type,
    source: 'orderflow/test',
    subject: 'Bestellung-für-Zoë',
    data: { id: '1' },
  });
  const headers = envelopeHeaders(envelope);
  headers.set('Nats-Expected-Last-Subject-Sequence', '7');
  headers.append('x-extra', 'a');
  headers.append('x-extra', 'b');
  const reference = new MsgHdrsImpl();
  for (const name of headers.keys()) for (const value of headers.values(name)) reference.append(name, value);
  const wire = (headers as MsgHdrsImpl).encode(); // what nats.js publish() sends
  assert.deepEqual(Buffer.from(wire), Buffer.from(reference.encode()));
  assert.equal(MsgHdrsImpl.decode(wire).get('ce-subject'), 'Bestellung-für-Zoë');
});

test('the registry tells an unknown type from an unsupported version', () => {
  const registry = new ContractRegistry([V1, V2]);
  assert.equal(registry.resolve('thing.done.v2'), V2);
  assert.throws(() => registry.resolve('thing.done.v3'), { code: 'UNSUPPORTED_VERSION' });
  assert.throws(() => registry.resolve('other.v1'), { code: 'UNKNOWN_TYPE' });
});

test('parse reports every schema problem with its path', () => {
  assert.throws(
    () => V2.parse({ id: 1 }),
    (error: unknown) =>
      error instanceof ValidationError &&
      error.issues.some((i) => i.path === '/id') &&
      error.issues.some((i) => i.path === '/at'),
  );
});

test('retry delays grow exponentially, stay capped and jittered', () => {
  const policy = { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, jitter: 0.2 };
  for (let i = 0; i < 50; i++) {
    const first = retryDelay(policy, 1);
    assert.ok(first >= 80 && first <= 120, `first delay ${first}`);
    const third = retryDelay(policy, 3);
    assert.ok(third >= 320 && third <= 480, `third delay ${third}`);
    assert.ok(retryDelay(policy, 20) <= 1_200);
  }
});
