// Contracts and payloads shared by the benchmarks (and by the request-reply responder process); the
// payloads themselves live in payloads.ts, which imports nothing (the peers' workers load it too).
import { Type } from '@sinclair/typebox';
import { defineCommand, defineEndpoint, defineEvent } from '@orderflow/messaging';

export {
  benchOrder,
  quote,
  quoteRequest,
  type BenchOrder,
  type QuoteRequest,
  type QuoteResponse,
} from './payloads.ts';

const Line = Type.Object({
  sku: Type.String({ minLength: 1 }),
  qty: Type.Integer({ minimum: 1 }),
  price: Type.Integer({ minimum: 0 }),
});

/** The benchmark's event: an order with two lines, ≈200 bytes of JSON. */
export const BenchOrderPlaced = defineEvent({
  name: 'bench.order.placed',
  schema: Type.Object({
    orderId: Type.String({ minLength: 1 }),
    customerId: Type.String({ minLength: 1 }),
    lines: Type.Array(Line, { minItems: 1 }),
    total: Type.Integer({ minimum: 0 }),
    currency: Type.String({ minLength: 3, maxLength: 3 }),
    placedAt: Type.String(),
  }),
});

/** The request-reply endpoint of the benchmark: price a basket. */
export const QuotePrice = defineCommand({
  name: 'bench.price.quote',
  schema: Type.Object({
    customerId: Type.String({ minLength: 1 }),
    skus: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  }),
});

export const PriceQuoted = defineEvent({
  name: 'bench.price.quoted',
  schema: Type.Object({ customerId: Type.String(), totalCents: Type.Integer({ minimum: 0 }) }),
});

/** Subject outside every stream's subjects, as request subjects must be. */
export const quoteEndpoint = (subject: string) =>
  defineEndpoint({ name: 'quote-price', subject, request: QuotePrice, response: PriceQuoted });
