import { after, before } from 'node:test';
import { errors, type NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, type NatsServer } from '@orderflow/testing';
import { connectNats } from '../src/connection.ts';
import { transportConformance } from '../src/conformance/transport.ts';
import { NatsTransport, type Transport } from '../src/transport.ts';

let server: NatsServer;
before(async () => (server = await startNatsServer()));
after(() => server.dispose());

const connections = new WeakMap<Transport, NatsConnection>();

transportConformance('NATS JetStream', () => ({
  features: { deduplication: true, optimisticConcurrency: true, streamSequences: true, replay: true },
  // What a KV write raises while its stream has no leader (a cluster node died).
  brokerOutage: () =>
    new Error('jetstream is not enabled', { cause: new errors.NoRespondersError('$KV.STATUS.a') }),
  async connect() {
    const { nc } = await connectNats({ servers: server.url, name: 'conformance' });
    const transport = await NatsTransport.create(nc, { source: 'orderflow/conformance' });
    connections.set(transport, nc);
    return transport;
  },
  async crash(transport) {
    await connections.get(transport)?.close();
  },
  async close(transport) {
    await transport.close({ deadlineMs: 1_000 });
    await connections.get(transport)?.close();
  },
}));
