import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import amqp, { type ChannelModel } from 'amqplib';
import { createRabbitVhost, type RabbitVhost } from '@orderflow/testing';
import { ThingHappened, transportConformance } from '../src/conformance/transport.ts';
import { isBrokerUnavailable, PublishError, TimeoutError } from '../src/errors.ts';
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

test('a closed channel or connection is a broker-unavailable error: a publish fails retryable', async () => {
  const connection = await amqp.connect(vhost.url);
  const transport = await RabbitTransport.create(connection, { source: 'orderflow/conformance' });
  const channel = await connection.createChannel();
  await channel.close();
  const closedChannel = await channel.checkQueue('x').then(
    () => assert.fail('a closed channel answered'),
    (error: unknown) => error,
  );
  assert.equal(isBrokerUnavailable(closedChannel), true, String(closedChannel));
  await connection.close();
  const closedConnection = await connection.createChannel().then(
    () => assert.fail('a closed connection opened a channel'),
    (error: unknown) => error,
  );
  assert.equal(isBrokerUnavailable(closedConnection), true, String(closedConnection));
  const error = await transport.publish(ThingHappened, { key: 'k', n: 1 }, { subject: 'x.k' }).then(
    () => assert.fail('published on a closed connection'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof PublishError);
  assert.equal(error.retryable, true, String(error.cause));
  // A channel the broker closed for a fault of ours (404 here) is not an outage.
  const other = await amqp.connect(vhost.url);
  const ch = await other.createChannel();
  ch.on('error', () => undefined);
  const notFound = await ch.checkQueue('no-such-queue').then(
    () => assert.fail('found a queue that does not exist'),
    (e: unknown) => e,
  );
  assert.equal(isBrokerUnavailable(notFound), false, String(notFound));
  await other.close();
});
