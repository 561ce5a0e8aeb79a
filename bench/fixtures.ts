// Contracts and payloads shared by the benchmarks (and by the request-reply responder process).
import { Type } from '@sinclair/typebox';
import { defineCommand, defineEndpoint, defineEvent } from '@orderflow/messaging';

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

export type BenchOrder = {
  orderId: string;
  customerId: string;
  lines: { sku: string; qty: number; price: number }[];
  total: number;
  currency: string;
  placedAt: string;
};

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** A distinct order per `i`; its JSON is ≈200 bytes. */
export function benchOrder(i: number): BenchOrder {
  const a = 100 + (i % 900);
  const b = 250 + (i % 400);
  return {
    orderId: `ord-${pad(i, 8)}`,
    customerId: `cus-${pad(i % 10_000, 5)}`,
    lines: [
      { sku: `SKU-${pad(i % 997, 4)}`, qty: 1 + (i % 3), price: a },
      { sku: `SKU-${pad(i % 991, 4)}`, qty: 1, price: b },
    ],
    total: a * (1 + (i % 3)) + b,
    currency: 'EUR',
    placedAt: new Date(1_735_689_600_000 + i).toISOString(),
  };
}

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

export type QuoteRequest = { customerId: string; skus: string[] };
export type QuoteResponse = { customerId: string; totalCents: number };

export function quoteRequest(i: number): QuoteRequest {
  return {
    customerId: `cus-${pad(i % 10_000, 6)}`,
    skus: [`SKU-${pad(i % 997, 6)}`, `SKU-${pad(i % 991, 6)}`],
  };
}

/** The responder's business logic, the same for the raw and the toolkit responder. */
export function quote(request: QuoteRequest): QuoteResponse {
  let total = 0;
  for (const sku of request.skus) total += 100 + (sku.charCodeAt(sku.length - 1) % 10) * 50;
  return { customerId: request.customerId, totalCents: total };
}
