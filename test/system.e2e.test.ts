// The whole system as separate processes on NATS, through its HTTP API: every service under the
// supervisor (cli/supervisor.ts), a private nats-server, the fake PSP, the SMTP sink, PGlite in a temp
// DATA_DIR. The scenarios are test/support/scenarios.ts (test/system-rabbitmq.e2e.test.ts runs them on
// RabbitMQ); a nats-server restart is NATS's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BrokerKind } from '@orderflow/messaging';
import { describeSystemScenarios } from './support/scenarios.ts';
import { mapLimit, waitTerminal } from './support/system.ts';

describeSystemScenarios({
  broker: BrokerKind.Nats,
  burst: 500,
  orderedConsumerReplicas: 'spread',
  brokerTests: ({ sys, customer, place }) => {
    test('nats-server restarts (SIGTERM, same store) mid-flow: every order still completes', async () => {
      const c = await customer();
      await sys().setPspFaults({ latencyMs: 300 });
      const placed = await mapLimit(
        Array.from({ length: 10 }, (_, i) => i),
        10,
        () => place(c),
      );
      await sys().system.supervisor.restart('nats-server');
      await sys().setPspFaults({ latencyMs: 0 });
      const views = await mapLimit(placed, 10, (o) => waitTerminal(sys(), o.orderId, 120_000));
      assert.deepEqual(
        views.filter((v) => v.status !== 'confirmed').map((v) => `${v.orderId}: ${v.status}`),
        [],
      );
    });
  },
});
