// The whole system as separate processes on RabbitMQ, through its HTTP API: the scenarios of
// test/support/scenarios.ts on a fresh vhost of the local RabbitMQ (users per identity made by the
// system's provisioning, removed with the vhost afterwards), the fake PSP, the SMTP sink, PGlite in a
// temp DATA_DIR. A smaller burst than on NATS keeps the file near a minute and a half on two cores.
import { BrokerKind } from '@orderflow/messaging';
import { describeSystemScenarios } from './support/scenarios.ts';

// payment-processor's orders queue has a single active consumer (per-order order across replicas):
// one replica handles the burst, the others stand by; the SIGKILL scenario kills that one.
describeSystemScenarios({
  broker: BrokerKind.RabbitMQ,
  burst: 200,
  orderedConsumerReplicas: 'single-active',
  // The first start on empty data directories is test/system.e2e.test.ts's; the broker changes
  // nothing in it, and four initdb at once cost this file ≈ 15 s.
  firstStart: false,
});
