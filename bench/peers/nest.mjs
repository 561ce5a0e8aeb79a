// NestJS 11 microservices workers of `npm run bench -- peers` (protocol: bench/peer-worker.ts), NATS transport:
// request-reply is ClientNats.send against a @MessagePattern handler; events are ClientNats.emit to
// an @EventPattern handler. Nest's NATS transport has no JetStream: an emitted event is a core NATS
// publish, neither stored nor acknowledged, so it is lost when no consumer is connected.
// Decorators are applied as functions (plain JavaScript, no transpiler), which is what they compile to.
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientProxyFactory, EventPattern, MessagePattern, Transport } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { quote, worker } from '../peer-worker.ts';

function decorate(target, method, decorator) {
  decorator(target.prototype, method, Object.getOwnPropertyDescriptor(target.prototype, method));
}

async function microservice(context, controller) {
  Controller()(controller);
  class BenchModule {}
  Module({ controllers: [controller] })(BenchModule);
  const app = await NestFactory.createMicroservice(BenchModule, {
    transport: Transport.NATS,
    options: { servers: [context.url], queue: context.name },
    logger: false,
  });
  await app.listen();
  return { close: () => app.close() };
}

function client(context) {
  return ClientProxyFactory.create({ transport: Transport.NATS, options: { servers: [context.url] } });
}

await worker({
  async responder(context) {
    class QuoteController {
      quote(request) {
        return quote(request);
      }
    }
    decorate(QuoteController, 'quote', MessagePattern(`${context.name}.quote`));
    return microservice(context, QuoteController);
  },
  async requester(context) {
    const proxy = client(context);
    await proxy.connect();
    const pattern = `${context.name}.quote`;
    return {
      call: async (i) => {
        const response = await lastValueFrom(proxy.send(pattern, context.request(i)));
        if (!(response.totalCents > 0)) throw new Error('bad response');
      },
      close: () => proxy.close(),
    };
  },
  async consumer(context, handled) {
    class OrdersController {
      placed(order) {
        if (order.total < 0) throw new Error('impossible');
        handled();
      }
    }
    decorate(OrdersController, 'placed', EventPattern(`${context.name}.placed`));
    return microservice(context, OrdersController);
  },
  async publisher(context) {
    const proxy = client(context);
    // connect() hands back the nats.js connection; emit() resolves once the publish is buffered, so a
    // flush per window of `inflight` events is the only back-pressure there is (from the server).
    const nc = await proxy.connect();
    const pattern = `${context.name}.placed`;
    let sinceFlush = 0;
    let flushing = Promise.resolve();
    return {
      publish: async (i) => {
        await lastValueFrom(proxy.emit(pattern, context.order(i)), { defaultValue: undefined });
        if (++sinceFlush >= context.inflight) {
          sinceFlush = 0;
          flushing = nc.flush();
        }
        await flushing;
      },
      close: () => proxy.close(),
    };
  },
});
