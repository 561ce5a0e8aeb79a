import assert from 'node:assert/strict';
import { test } from 'node:test';
import { faultClassesFor, faultProblems } from './faults.ts';

// Which faults a chaos run may inject depends on the broker: each breaks the broker its own way.

test('each broker mode has its own broker fault, and shares the others', () => {
  const shared = ['kill', 'pg-outage', 'psp', 'rolling-restart', 'poison'];
  const others = (classes: string[]) => classes.filter((c) => !shared.includes(c));
  assert.deepEqual(others(faultClassesFor({ broker: 'nats', nats: 'single' })), ['nats-restart']);
  assert.deepEqual(others(faultClassesFor({ broker: 'nats', nats: 'cluster' })), ['node-kill']);
  assert.deepEqual(others(faultClassesFor({ broker: 'rabbitmq', nats: 'single' })), ['broker-restart']);
  for (const broker of ['nats', 'rabbitmq'] as const)
    for (const fault of shared)
      assert.ok(faultClassesFor({ broker, nats: 'single' }).includes(fault as never));
});

test('a fault of another broker is refused, every one named', () => {
  assert.deepEqual(faultProblems(['kill', 'broker-restart'], { broker: 'rabbitmq', nats: 'single' }), []);
  assert.deepEqual(
    faultProblems(['nats-restart', 'kill', 'node-kill'], { broker: 'rabbitmq', nats: 'single' }).map(
      (p) => p.split(' (')[0],
    ),
    ['fault nats-restart does not apply to RabbitMQ', 'fault node-kill does not apply to RabbitMQ'],
  );
  assert.match(
    faultProblems(['broker-restart'], { broker: 'nats', nats: 'cluster' })[0] ?? '',
    /^fault broker-restart does not apply to NATS cluster \(there: kill, node-kill, /,
  );
});
