// Moleculer 0.14 workers of `npm run bench -- peers` (protocol: bench/peer-worker.ts): request-reply with the
// NATS transporter (broker.call against an action), durable events with @moleculer/channels on
// JetStream (broker.sendToChannel, a channel handler in a consumer group, acked after the handler).
import { ServiceBroker } from 'moleculer';
import ChannelsMiddleware from '@moleculer/channels';
import { quote, worker } from '../peer-worker.ts';

const channels = (context) =>
  ChannelsMiddleware.Middleware({
    // maxInFlight becomes the consumer's max_ack_pending (the default, 1, would serialise delivery).
    adapter: { type: 'NATS', options: { nats: { url: context.url }, maxInFlight: context.maxAckPending } },
  });

async function broker(context, nodeID, options = {}) {
  const b = new ServiceBroker({
    nodeID: `${nodeID}-${process.pid}`,
    transporter: context.url,
    logger: false,
    ...options,
  });
  return b;
}

await worker({
  async responder(context) {
    const b = await broker(context, 'responder');
    b.createService({
      name: context.name,
      actions: { quote: (ctx) => quote(ctx.params) },
    });
    await b.start();
    return { close: () => b.stop() };
  },
  async requester(context) {
    const b = await broker(context, 'requester');
    await b.start();
    await b.waitForServices(context.name);
    const action = `${context.name}.quote`;
    return {
      call: async (i) => {
        const response = await b.call(action, context.request(i), { timeout: 5_000 });
        if (!(response.totalCents > 0)) throw new Error('bad response');
      },
      close: () => b.stop(),
    };
  },
  async consumer(context, handled) {
    context.maxAckPending = 10_000;
    const b = await broker(context, 'consumer', { middlewares: [channels(context)] });
    b.createService({
      name: 'orders-consumer',
      channels: {
        [context.name]: {
          group: 'bench',
          handler: async (order) => {
            if (order.total < 0) throw new Error('impossible');
            handled(); // the adapter acks once this returns
          },
        },
      },
    });
    await b.start();
    return { close: () => b.stop() };
  },
  async publisher(context) {
    context.maxAckPending = 10_000;
    const b = await broker(context, 'publisher', { middlewares: [channels(context)] });
    await b.start();
    return {
      publish: (i) => b.sendToChannel(context.name, context.order(i)),
      close: () => b.stop(),
    };
  },
});
