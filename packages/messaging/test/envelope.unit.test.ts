import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MsgHdrsImpl } from '@nats-io/nats-core';
import { Type } from '@sinclair/typebox';
import {
  ContractRegistry,
  createEnvelope,
  decodeEnvelope,
  decodeHeaderValue,
  defineEvent,
  encodeData,
  encodeHeaderValue,
  envelopeHeaders,
  envelopeSubject,
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
  assert.equal(MsgHdrsImpl.decode(wire).get('ce-subject'), 'Bestellung-f%C3%BCr-Zo%C3%AB');
});

test('header values are percent-encoded as the CloudEvents NATS binding asks, and decoded back', () => {
  // The binding's example (3.1.3.2), plus the characters it names: space, double quote, percent, controls.
  assert.equal(encodeHeaderValue('Euro € 😀'), 'Euro%20%E2%82%AC%20%F0%9F%98%80');
  assert.equal(encodeHeaderValue('a "b" 100%\r\n'), 'a%20%22b%22%20100%25%0D%0A');
  assert.equal(encodeHeaderValue('orderflow/payment-processor'), 'orderflow/payment-processor');
  for (const value of ['Euro € 😀', 'a "b" 100%', ' padded ', 'tab\tand\u007f', '%41 literal']) {
    assert.equal(decodeHeaderValue(encodeHeaderValue(value)), value);
  }
  assert.equal(decodeHeaderValue('%e2%82%ac'), '€', 'lower-case hex is accepted');
  assert.equal(decodeHeaderValue('%41BC'), 'ABC', 'unnecessary encoding is accepted');
  assert.equal(decodeHeaderValue('"quoted \\"value\\""'), 'quoted "value"', 'old-style quoted strings');
  assert.equal(decodeHeaderValue('100%'), '100%', 'a stray percent stays');
  assert.throws(() => decodeHeaderValue('%C0%A0', 'ce-id'), { code: 'DECODE_FAILED', message: /ce-id/ });
  assert.throws(() => decodeHeaderValue('%FF'), { code: 'DECODE_FAILED' });
});

test('a structured-mode event decodes to the same envelope as its binary-mode form', () => {
  const envelope = createEnvelope({ type: V1.type, source: 'urn:x', subject: 'für', data: { id: '1' } });
  const binary = decodeEnvelope(
    envelopeHeaders(envelope),
    new TextEncoder().encode(encodeData(envelope.data)),
  );
  const h = new MsgHdrsImpl();
  h.set('content-type', 'application/cloudevents+json');
  const body = JSON.stringify({
    specversion: '1.0',
    id: envelope.id,
    type: envelope.type,
    source: envelope.source,
    subject: envelope.subject,
    time: envelope.time,
    datacontenttype: envelope.dataContentType,
    traceparent: envelope.traceparent,
    correlationid: envelope.correlationId,
    data: envelope.data,
  });
  assert.deepEqual(decodeEnvelope(h, new TextEncoder().encode(body)), binary);
  assert.equal(
    envelopeSubject({ header: (n) => h.get(n) || undefined, body: new TextEncoder().encode(body) }),
    'für',
  );
  assert.throws(
    () =>
      decodeEnvelope(
        h,
        new TextEncoder().encode(JSON.stringify({ specversion: '1.0', id: 1, type: 't', source: 's' })),
      ),
    { code: 'DECODE_FAILED', message: /id must be strings/ },
  );
  assert.throws(
    () =>
      decodeEnvelope(
        h,
        new TextEncoder().encode(
          JSON.stringify({
            specversion: '1.0',
            id: 'i',
            type: 't',
            source: 's',
            datacontenttype: 'text/plain',
            data: 'x',
          }),
        ),
      ),
    { code: 'DECODE_FAILED', message: /datacontenttype "text\/plain"/ },
  );
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
