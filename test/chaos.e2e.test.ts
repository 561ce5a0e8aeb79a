// The fault-injection harness (`npm run chaos`, cli/chaos/) in a short seeded run on a single
// nats-server: the whole system as processes on PostgreSQL, under load through HTTP, with every fault
// class of that mode injected at least once. The invariants (nothing lost, nothing done twice, dead
// letters only for the poison) must all hold. The cluster fault (a node killed) is in
// chaos-cluster.e2e.test.ts.
import { test } from 'node:test';
import { chaosRun } from './support/chaos.ts';

test('single nats-server: SIGKILL of every service, NATS restart, PostgreSQL outage, PSP faults, rolling restart, poison', async (t) => {
  await chaosRun(t, {
    orders: 150,
    seed: 20261201,
    ratePerSecond: 10,
    nats: 'single',
    faults: ['kill', 'nats-restart', 'pg-outage', 'psp', 'rolling-restart', 'poison'],
    killsPerService: 1,
    paymentReplicas: 2,
  });
});
