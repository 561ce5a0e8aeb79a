import type { NatsConnection } from '@nats-io/nats-core';
import {
  consumerPositions,
  discoverServices,
  streamSummaries,
  type NatsTransport,
} from '@orderflow/messaging';
import type { Operations } from '../console.ts';

/** The console's {@link Operations} over the gateway's NATS connection (its identity's console rights). */
export function natsOperations(nc: NatsConnection, transport: NatsTransport): Operations {
  return {
    services: () => discoverServices(nc, { waitMs: 500 }),
    streams: () => streamSummaries(nc),
    consumers: () => consumerPositions(nc),
    deadLetters: transport.deadLetters,
  };
}
