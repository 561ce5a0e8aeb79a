// Per-key ordering when an earlier message of a key comes back late: it must not wait behind a later
// message of the same key that is being retried (found by the chaos harness: email-notify got an
// order's delivery.assigned before the order.placed a crashed replica had held, and the placed event
// stayed queued behind the retries until the assigned one was dead-lettered).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { ThingHappened } from '../src/conformance/transport.ts';
import { connectNats, NatsTransport, on, type ConsumerSpec } from '../src/mod.ts';

let server: NatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.dispose();
});

test('a message redelivered late runs before the later message of its key that waits for it', async () => {
  const { nc } = await connectNats({ servers: server.url, name: 'ordering-test' });
  const transport = await NatsTransport.create(nc, { source: 'orderflow/ordering-test' });
  const stream = uniqueName('ORD').toUpperCase();
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);

  const handled: number[] = [];
  const spec: ConsumerSpec = {
    name: uniqueName('ordered'),
    stream,
    orderingKey: 'subject',
    ackWaitMs: 1_500,
    maxDeliver: 6,
    retry: { initialDelayMs: 200, maxDelayMs: 400 },
    handlers: [
      on(ThingHappened, async (event) => {
        // The second event of the key needs the first one (as a mail needs the order's contact).
        if (event.data.n === 2 && !handled.includes(1)) throw new Error('event 1 not handled yet');
        handled.push(event.data.n);
      }),
    ],
  };
  // Create the durable, then publish two events of one key.
  await (await transport.consume(spec)).stop();
  for (const n of [1, 2])
    await transport.publish(ThingHappened, { key: 'k', n }, { subject: `${stream}.k`, about: 'k' });

  // Another instance takes event 1 and dies without acking: the server redelivers it after ack_wait.
  const held = await (await jetstream(nc).consumers.get(stream, spec.name)).fetch({ max_messages: 1 });
  for await (const msg of held) assert.equal(msg.seq, 1);

  const consumer = await transport.consume(spec);
  await waitFor(() => handled.length === 2, { timeoutMs: 15_000, message: 'both events handled' });
  assert.deepEqual(handled, [1, 2], 'stream order');
  assert.deepEqual(await transport.deadLetters.list({ stream }), [], 'nothing dead-lettered');
  await consumer.stop();
  await transport.close();
  await nc.close();
});
