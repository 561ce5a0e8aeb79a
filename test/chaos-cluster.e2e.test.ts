// The fault-injection harness on a 3-node JetStream cluster with R3 streams, dead-letter stream, KV
// and object store: a node is SIGKILLed under load and brought back, services fail over on their own,
// and poison lands on every consumed subject. The invariants must all hold, the order-storage read
// model included (a node kill used to stall it, see docs/reliability.md).
import { test } from 'node:test';
import { chaosRun } from './support/chaos.ts';

test('3-node JetStream cluster, R3 streams: a node killed under load and brought back, poison', async (t) => {
  await chaosRun(t, {
    orders: 80,
    seed: 20261202,
    ratePerSecond: 10,
    nats: 'cluster',
    faults: ['node-kill', 'poison'],
    killsPerService: 0,
    paymentReplicas: 2,
  });
});
