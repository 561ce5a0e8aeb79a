// The benchmarks' payloads and the responder's business logic, free of imports: the peers' workers
// (bench/peers/) load this file without loading the toolkit.

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
