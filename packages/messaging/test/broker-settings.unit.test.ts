import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  brokerSettings,
  BrokerUnsupportedError,
  EnvSettings,
  requireNatsBroker,
  serviceSettings,
} from '../src/mod.ts';

const read = (vars: Record<string, string>) => {
  const env = new EnvSettings(vars);
  return { broker: brokerSettings(env, { deadLetterReplicas: 3 }), problems: env.problems };
};

test('BROKER defaults to NATS with NATS_URL, the nkey and CA files, and the dead-letter replicas', () => {
  assert.deepEqual(read({}), {
    broker: { kind: 'nats', servers: 'nats://127.0.0.1:4222', auth: {}, deadLetterReplicas: 3 },
    problems: [],
  });
  assert.deepEqual(
    read({ NATS_URL: 'nats://a:4222,nats://b:4222', NATS_NKEY_SEED_FILE: '/s/seed', NATS_CA_FILE: '/s/ca' })
      .broker,
    {
      kind: 'nats',
      servers: 'nats://a:4222,nats://b:4222',
      auth: { nkeySeedFile: '/s/seed', caFile: '/s/ca' },
      deadLetterReplicas: 3,
    },
  );
});

test('BROKER=rabbitmq reads AMQP_URL (default amqp://127.0.0.1:5672) and ignores the NATS variables', () => {
  assert.deepEqual(read({ BROKER: 'rabbitmq', NATS_URL: 'nats://x:4222' }), {
    broker: { kind: 'rabbitmq', url: 'amqp://127.0.0.1:5672' },
    problems: [],
  });
  assert.deepEqual(read({ BROKER: 'rabbitmq', AMQP_URL: 'amqps://svc:pw@mq:5671/orderflow' }).broker, {
    kind: 'rabbitmq',
    url: 'amqps://svc:pw@mq:5671/orderflow',
  });
  assert.deepEqual(read({ BROKER: 'rabbitmq', AMQP_PROVISIONED: 'true' }).broker, {
    kind: 'rabbitmq',
    url: 'amqp://127.0.0.1:5672',
    provisioned: true,
  });
});

test('an unknown BROKER or a non-AMQP AMQP_URL is a problem, reported with the others; the password is not echoed', () => {
  assert.deepEqual(read({ BROKER: 'kafka' }).problems, [
    'BROKER must be one of nats, rabbitmq (got "kafka")',
  ]);
  assert.deepEqual(read({ BROKER: 'rabbitmq', AMQP_URL: 'http://svc:secret@mq/' }).problems, [
    'AMQP_URL must be an amqp:// or amqps:// URL',
  ]);
  assert.deepEqual(read({ BROKER: 'rabbitmq', AMQP_URL: 'not a url secret' }).problems, [
    'AMQP_URL must be an amqp:// or amqps:// URL',
  ]);
  const env = new EnvSettings({ BROKER: 'Rabbit', STREAM_REPLICAS: '9' });
  serviceSettings(env, { maxDeliver: 5 });
  assert.deepEqual(env.problems, [
    'STREAM_REPLICAS must be an integer in 1..5',
    'BROKER must be one of nats, rabbitmq (got "Rabbit")',
  ]);
});

test('requireNatsBroker passes NATS through and refuses RabbitMQ with what is missing', () => {
  const nats = { kind: 'nats', servers: 'nats://127.0.0.1:4222' } as const;
  assert.equal(requireNatsBroker(nats, 'order-status', ['the status store']), nats);
  assert.throws(
    () =>
      requireNatsBroker({ kind: 'rabbitmq', url: 'amqp://127.0.0.1:5672' }, 'order-status', [
        'the order status store (JetStream KV bucket)',
      ]),
    (error: unknown) => {
      assert.ok(error instanceof BrokerUnsupportedError);
      assert.equal(error.code, 'BROKER_UNSUPPORTED');
      assert.equal(error.service, 'order-status');
      assert.equal(error.broker, 'rabbitmq');
      assert.equal(
        error.message,
        'order-status cannot run on RabbitMQ yet: the order status store (JetStream KV bucket) is only ' +
          'implemented on NATS (set BROKER=nats)',
      );
      return true;
    },
  );
});
