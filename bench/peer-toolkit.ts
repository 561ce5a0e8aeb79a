// The toolkit's workers of `npm run bench -- peers` (protocol: bench/peer-worker.ts): RpcServer /
// RpcClient for request-reply, NatsTransport.publish / consume (default middleware, explicit ack)
// on JetStream for durable events — the same calls as the request-reply and messaging benchmarks.
import { nanos } from '@nats-io/nats-core';
import { StorageType } from '@nats-io/jetstream';
import { connectNats, NatsTransport, on, RpcClient, RpcServer } from '@orderflow/messaging';
import { BenchOrderPlaced, quote, quoteEndpoint } from './fixtures.ts';
import { worker, type WorkerContext } from './peer-worker.ts';

/** The stream and subject of a durable-event run (created by the consumer, which starts first). */
function eventTopology(context: WorkerContext): { stream: string; subject: string } {
  const id = context.name.replace(/[^A-Za-z0-9]/g, '_');
  return { stream: `BENCH_${id.toUpperCase()}`, subject: `bench.${id.toLowerCase()}.order.placed` };
}

async function transport(context: WorkerContext, name: string) {
  const { nc } = await connectNats({ servers: context.url, name });
  const t = await NatsTransport.create(nc, { source: 'orderflow/bench' });
  return {
    t,
    close: async () => {
      await t.close();
      await nc.close();
    },
  };
}

await worker({
  async responder(context) {
    const { nc } = await connectNats({ servers: context.url, name: 'bench-peers-responder' });
    const server = new RpcServer(nc, { name: 'bench-responder', version: '0.0.0' });
    server.serve(quoteEndpoint(`${context.name}.quote`), async (request) => quote(request));
    await nc.flush();
    return {
      async close() {
        await server.stop();
        await nc.close();
      },
    };
  },
  async requester(context) {
    const { nc } = await connectNats({ servers: context.url, name: 'bench-peers-requester' });
    const rpc = new RpcClient(nc);
    const endpoint = quoteEndpoint(`${context.name}.quote`);
    return {
      call: async (i) => {
        const response = await rpc.request(endpoint, context.request(i), { timeoutMs: 5_000 });
        if (!(response.totalCents > 0)) throw new Error('bad response');
      },
      async close() {
        rpc.close();
        await nc.close();
      },
    };
  },
  async consumer(context, handled) {
    const { stream, subject } = eventTopology(context);
    const { t, close } = await transport(context, 'bench-peers-consumer');
    // The same stream configuration as the messaging benchmark: file storage, 2-minute duplicate window.
    await t.jsm.streams.add({
      name: stream,
      subjects: [subject],
      storage: StorageType.File,
      duplicate_window: nanos(120_000),
    });
    const consumer = await t.consume({
      name: 'bench',
      stream,
      handlers: [
        on(BenchOrderPlaced, async (event) => {
          if (event.data.total < 0) throw new Error('impossible');
          handled(); // acked once this returns
        }),
      ],
      prefetch: 1_000,
      maxAckPending: 10_000,
    });
    return {
      async close() {
        await consumer.stop();
        await t.jsm.streams.delete(stream).catch(() => false);
        await close();
      },
    };
  },
  async publisher(context) {
    const { subject } = eventTopology(context);
    const { t, close } = await transport(context, 'bench-peers-publisher');
    return {
      publish: (i) => {
        const order = context.order(i);
        return t.publish(BenchOrderPlaced, order, { subject, about: order.orderId });
      },
      close,
    };
  },
});
