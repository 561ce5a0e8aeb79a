import type { Projection } from '@orderflow/eventstore';
import type { SqlExecutor } from '@orderflow/sql';
import type { OrderEvent } from '../domain/order.ts';

export type OrderReadModelTables = 'order_summaries';

/**
 * The order read model: one row per order, fed from `orders.*` by a projection whose checkpoint
 * commits with each change. Readers query the view `order_summaries`; `payment_id` and the other
 * facts are joined from `order_facts`.
 */
export const orderSummaries: Projection<OrderEvent, OrderReadModelTables> = {
  name: 'order_summaries',
  tables: ['order_summaries'],
  async setup(tx, t) {
    await tx.query(`CREATE TABLE ${t.order_summaries} (
      order_id text PRIMARY KEY,
      customer_id text NOT NULL,
      customer_email text NOT NULL,
      status text NOT NULL,
      currency text NOT NULL,
      total bigint NOT NULL,
      lines jsonb NOT NULL,
      cancellation_reason text,
      placed_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      version bigint NOT NULL)`);
    await tx.query(`CREATE INDEX ON ${t.order_summaries} (customer_id)`);
  },
  async apply(tx, event, t) {
    const id = event.metadata.aggregateId;
    const update = (status: string, at: string, reason: string | null = null) =>
      tx.query(
        `UPDATE ${t.order_summaries}
         SET status = $2, updated_at = $3, version = $4, cancellation_reason = COALESCE($5, cancellation_reason)
         WHERE order_id = $1`,
        [id, status, at, event.metadata.sequence, reason],
      );
    switch (event.type) {
      case 'order.placed': {
        const d = event.data;
        await tx.query(
          `INSERT INTO ${t.order_summaries}
             (order_id, customer_id, customer_email, status, currency, total, lines, placed_at, updated_at, version)
           VALUES ($1, $2, $3, 'placed', $4, $5, $6::text::jsonb, $7, $7, $8)
           ON CONFLICT (order_id) DO NOTHING`,
          [
            id,
            d.customer.customerId,
            d.customer.email,
            d.currency,
            d.total,
            JSON.stringify(d.lines),
            d.placedAt,
            event.metadata.sequence,
          ],
        );
        return;
      }
      case 'order.cancel-requested':
        await update('cancellation_requested', event.data.requestedAt);
        return;
      case 'order.confirmed':
        await update('confirmed', event.data.confirmedAt);
        return;
      case 'order.cancelled':
        await update('cancelled', event.data.cancelledAt, event.data.reason);
        return;
      default:
        return event satisfies never;
    }
  },
};

/** One order as the read model has it. */
export interface OrderSummary {
  readonly orderId: string;
  readonly customerId: string;
  /** `placed`, `paid` (placed and charged), `cancellation_requested`, `confirmed` or `cancelled`. */
  readonly status: string;
  readonly currency: string;
  readonly total: number;
  readonly cancellationReason: string | null;
  readonly paymentId: string | null;
  readonly invoiceNumber: string | null;
  /** The credit note that cancelled the invoice of a refunded order. */
  readonly creditNoteNumber: string | null;
  readonly courierId: string | null;
  /** Stream sequence of the last order event applied. */
  readonly version: number;
}

/** Reads the read model (the view, joined with the facts). */
export async function orderSummary(db: SqlExecutor, orderId: string): Promise<OrderSummary | undefined> {
  const { rows } = await db.query<{
    order_id: string;
    customer_id: string;
    status: string;
    currency: string;
    total: number;
    cancellation_reason: string | null;
    payment_id: string | null;
    invoice_number: string | null;
    credit_note_number: string | null;
    courier_id: string | null;
    version: number;
  }>(
    `SELECT s.order_id, s.customer_id, s.status, s.currency, s.total, s.cancellation_reason, s.version,
            f.payment_id, f.invoice_number, f.credit_note_number, f.courier_id
     FROM order_summaries s LEFT JOIN order_facts f ON f.order_id = s.order_id
     WHERE s.order_id = $1`,
    [orderId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    orderId: row.order_id,
    customerId: row.customer_id,
    status: row.status === 'placed' && row.payment_id ? 'paid' : row.status,
    currency: row.currency,
    total: Number(row.total),
    cancellationReason: row.cancellation_reason,
    paymentId: row.payment_id,
    invoiceNumber: row.invoice_number,
    creditNoteNumber: row.credit_note_number,
    courierId: row.courier_id,
    version: Number(row.version),
  };
}
