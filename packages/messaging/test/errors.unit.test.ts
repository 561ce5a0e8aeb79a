import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JetStreamApiError } from '@nats-io/jetstream';
import { errors } from '@nats-io/nats-core';
import {
  BrokerUnavailableError,
  isBrokerUnavailable,
  isTransient,
  PublishError,
  ValidationError,
} from '../src/mod.ts';

test('isBrokerUnavailable: timeouts, no responders, lost connections and JetStream 503s, also as causes', () => {
  const unavailable = [
    new errors.TimeoutError(),
    new errors.NoRespondersError('$JS.API.STREAM.MSG.GET.ORDERING'),
    new errors.ClosedConnectionError(),
    new JetStreamApiError({
      code: 503,
      err_code: 10008,
      description: 'JetStream system temporarily unavailable',
    }),
    new Error('read failed', { cause: new Error('wrapped', { cause: new errors.TimeoutError() }) }),
    new BrokerUnavailableError('memory', 'broker memory is unavailable'),
  ];
  for (const error of unavailable) assert.equal(isBrokerUnavailable(error), true, String(error));
  const other = [
    new Error('boom'),
    // fetch's AbortSignal.timeout(): named TimeoutError, but an HTTP dependency, not NATS
    new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    new Error('PSP timed out', { cause: new DOMException('aborted', 'TimeoutError') }),
    new JetStreamApiError({ code: 404, err_code: 10059, description: 'stream not found' }),
    new ValidationError('t.v1', []),
    'a string',
    undefined,
  ];
  for (const error of other) assert.equal(isBrokerUnavailable(error), false, String(error));
});

test('a PublishError is retryable (transient) only when the server was unavailable', () => {
  assert.equal(isTransient(new PublishError('s', 'timed out', { cause: new errors.TimeoutError() })), true);
  assert.equal(
    isTransient(new PublishError('s', 'refused', { cause: new Error('maximum payload exceeded') })),
    false,
  );
  assert.equal(
    isTransient(new PublishError('s', 'down', { cause: new BrokerUnavailableError('memory', 'down') })),
    true,
  );
});
