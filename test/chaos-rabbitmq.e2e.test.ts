// The fault-injection harness (`npm run chaos -- --broker rabbitmq`, cli/chaos/) in a short seeded run
// on RabbitMQ: the whole system as processes on a fresh vhost of the machine's RabbitMQ and on
// PostgreSQL, under load through HTTP; every service SIGKILLed once, the RabbitMQ node restarted
// (`rabbitmqctl stop_app` / `start_app`: it restarts the node every vhost is on, which is why the e2e
// files run one after the other, after every other test), a PostgreSQL outage, PSP faults, poison.
// The invariants (nothing lost, nothing done twice, dead letters only for the poison, no refusal in
// the node's log) must all hold.
import { test } from 'node:test';
import { chaosRun } from './support/chaos.ts';

test('RabbitMQ: SIGKILL of every service, broker restart, PostgreSQL outage, PSP faults, poison', async (t) => {
  await chaosRun(t, {
    orders: 100,
    seed: 20261203,
    ratePerSecond: 10,
    broker: 'rabbitmq',
    faults: ['kill', 'broker-restart', 'pg-outage', 'psp', 'poison'],
    killsPerService: 1,
    paymentReplicas: 2,
    // Shorter than the default 10–20 s: the run stays within its share of the suite's time.
    pgOutageMs: { min: 5_000, max: 8_000 },
  });
});
