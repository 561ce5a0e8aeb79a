import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DeadLetterTopology,
  RABBIT_EXCHANGES,
  rabbitBusPermissions,
  rabbitPermissions,
  RabbitTopology,
  subjectRegex,
  type BusIdentity,
} from '../src/mod.ts';

const payments: BusIdentity = {
  name: 'payments',
  description: 'test',
  publishes: ['payments.*'],
  requests: ['rpc.token', '$SRV.>'],
  consumers: [
    { stream: 'S', durable: 'payments-orders' },
    { stream: DeadLetterTopology.stream, durable: 'redrive-S-payments-orders' },
  ],
  deadLetters: [DeadLetterTopology.deadLetterSubject('S', 'payments-orders')],
};

const matches = (regex: string, value: string) => new RegExp(regex).test(value);

test('subjectRegex: `*` is one token, `>` the rest, literals are exact', () => {
  assert.equal(matches(subjectRegex('orders.*'), 'orders.1'), true);
  assert.equal(matches(`^${subjectRegex('orders.*')}$`, 'orders.1.2'), false);
  assert.equal(matches(`^${subjectRegex('orders.*')}$`, 'orders.#'), false);
  assert.equal(matches(`^${subjectRegex('a.>')}$`, 'a.b.c'), true);
  assert.equal(matches(`^${subjectRegex('a.b')}$`, 'aXb'), false);
});

test('a service may publish only its own subjects, read only its own queues, configure only its private queues', () => {
  const p = rabbitPermissions(payments);
  const topic = (exchange: string) => p.topics.find((t) => t.exchange === exchange);
  assert.deepEqual(
    p.topics.map((t) => t.exchange),
    RABBIT_EXCHANGES.map((e) => e.name),
    'a topic permission on every exchange (none would allow every key)',
  );
  const events = topic(RabbitTopology.events);
  assert.ok(events);
  assert.equal(matches(events.write, 'payments.o1'), true);
  assert.equal(matches(events.write, 'orders.o1'), false);
  assert.equal(events.read, '^$');
  const rpc = topic(RabbitTopology.rpc);
  assert.equal(matches(rpc?.write ?? '', 'rpc.token'), true);
  assert.equal(matches(rpc?.write ?? '', '$SRV.PING'), false, 'NATS-only subjects are left out');
  assert.equal(matches(topic(RabbitTopology.retry)?.write ?? '', 'S.payments-orders.retry'), true);
  assert.equal(
    matches(topic(RabbitTopology.deadLetterExchange)?.write ?? '', 'deadletter.S.payments-orders'),
    true,
  );
  assert.equal(matches(topic(RabbitTopology.deadLetterExchange)?.write ?? '', 'deadletter.S.other'), false);
  assert.equal(topic(RabbitTopology.replies)?.write, '^$', 'it serves nothing, so it replies to no one');
  assert.equal(matches(topic(RabbitTopology.replies)?.read ?? '', 'orderflow.tmp.payments.x'), true);
  assert.equal(matches(topic(RabbitTopology.replies)?.read ?? '', 'orderflow.tmp.other.x'), false);

  assert.equal(matches(p.read, 'S.payments-orders'), true);
  assert.equal(matches(p.read, 'S.storage-payments'), false);
  assert.equal(matches(p.read, RabbitTopology.deadLetterQueue), false);
  assert.equal(matches(p.configure, 'orderflow.tmp.payments.abc'), true);
  assert.equal(matches(p.configure, 'S.payments-orders'), false, 'the provisioner owns the consumer queue');
  assert.equal(matches(p.write, 'amq.default'), false);
  assert.equal(matches(p.write, RabbitTopology.events), true);
  assert.equal(matches(p.write, RabbitTopology.broadcast), false);
});

test('the provisioning identity may do everything; a name declared twice is a configuration error', () => {
  const p = rabbitPermissions({ name: 'provisioner', description: 'p', jetStreamAdmin: true });
  assert.equal(p.configure, '.*');
  assert.throws(() => rabbitBusPermissions([payments, payments]), /declared twice/);
});
