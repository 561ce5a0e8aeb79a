import { after, before } from 'node:test';
import amqp, { type ChannelModel } from 'amqplib';
import { createRabbitVhost, type RabbitVhost } from '@orderflow/testing';
import { transportConformance } from '../src/conformance/transport.ts';
import { PublishError, TimeoutError } from '../src/errors.ts';
import { RabbitTransport } from '../src/rabbitmq/transport.ts';
import type { Transport } from '../src/transport.ts';

let vhost: RabbitVhost;
before(async () => (vhost = await createRabbitVhost()));
after(() => vhost.dispose());

const connections = new WeakMap<Transport, ChannelModel>();

transportConformance('RabbitMQ', () => ({
  // No Nats-Msg-Id window; `expectedLastSubjectSequence` is refused (UNSUPPORTED); queues have no
  // sequence numbers (always 0); a consumer's queue holds only what arrived after it was declared.
  features: { deduplication: false, optimisticConcurrency: false, streamSequences: false, replay: false },
  brokerOutage: () =>
    new PublishError('orders.1', 'no confirm', { cause: new TimeoutError('orders.1', 5_000) }),
  async connect() {
    const connection = await amqp.connect(vhost.url);
    const transport = await RabbitTransport.create(connection, { source: 'orderflow/conformance' });
    connections.set(transport, connection);
    return transport;
  },
  async crash(transport) {
    // The socket goes without a goodbye: the broker returns every unacked message.
    const connection = connections.get(transport);
    connection?.on('error', () => undefined);
    const socket = (connection as unknown as { connection: { stream: { destroy(error: Error): void } } })
      .connection.stream;
    socket.destroy(new Error('crash'));
  },
  async close(transport) {
    await transport.close({ deadlineMs: 1_000 });
    await connections.get(transport)?.close();
  },
}));
