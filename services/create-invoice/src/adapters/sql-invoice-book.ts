import { SqlInbox, type Migration, type SqlStore, type SqlTransaction } from '@orderflow/sql';
import {
  decideIssue,
  draftInvoice,
  invoiceYear,
  type InvoiceDocument,
  type OrderDetails,
} from '../domain/invoice.ts';
import { CreateInvoiceError, InvoiceErrorCode } from '../errors.ts';

export const invoiceMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'orders, counters and invoices',
    sql: `
      CREATE TABLE invoice_orders (
        order_id text PRIMARY KEY,
        details jsonb,
        cancelled_at timestamptz
      );
      CREATE TABLE invoice_counters (
        year integer PRIMARY KEY,
        last_sequence integer NOT NULL CHECK (last_sequence > 0)
      );
      CREATE TABLE invoices (
        order_id text PRIMARY KEY REFERENCES invoice_orders (order_id),
        year integer NOT NULL,
        sequence integer NOT NULL,
        number text NOT NULL UNIQUE,
        total bigint NOT NULL,
        currency text NOT NULL,
        document jsonb NOT NULL,
        issued_at timestamptz NOT NULL,
        UNIQUE (year, sequence)
      );`,
  },
];

/** Outcome of handling a `payment.authorized`. */
export type IssueOutcome = { kind: 'issued'; invoice: InvoiceDocument } | { kind: 'skipped_cancelled' };

/**
 * create-invoice's SQL store: the orders it knows (from `order.placed`, and whether they were cancelled),
 * one counter row per year, and the invoices.
 *
 * Gapless numbers: the number is taken from the year's counter row (`INSERT … ON CONFLICT DO UPDATE SET
 * last_sequence = last_sequence + 1 RETURNING`) in the transaction that inserts the invoice and the
 * inbox record. The counter row stays locked until that transaction ends, so replicas take numbers one
 * after another, and a transaction that rolls back gives its number back: every committed number is
 * used by exactly one invoice and none is skipped. The order's row is locked first (`FOR UPDATE`), which
 * serialises an order's `payment.authorized` with its cancellation and makes one invoice per order.
 */
export class SqlInvoiceBook {
  readonly #inbox: SqlInbox;

  constructor(
    private readonly store: SqlStore,
    private readonly options: { consumer: string; now?: () => Date },
  ) {
    this.#inbox = new SqlInbox(store);
  }

  /** Keeps what an invoice needs of an order (first `order.placed` wins). */
  async rememberOrder(orderId: string, details: OrderDetails): Promise<void> {
    await this.store.query(
      `INSERT INTO invoice_orders (order_id, details) VALUES ($1, $2::text::jsonb)
       ON CONFLICT (order_id) DO UPDATE SET details = COALESCE(invoice_orders.details, EXCLUDED.details)`,
      [orderId, JSON.stringify(details)],
    );
  }

  /** Notes that the order is being cancelled: it will not be invoiced from now on. */
  async markCancelled(orderId: string, at: Date): Promise<void> {
    await this.store.query(
      `INSERT INTO invoice_orders (order_id, cancelled_at) VALUES ($1, $2)
       ON CONFLICT (order_id) DO UPDATE SET cancelled_at = COALESCE(invoice_orders.cancelled_at, EXCLUDED.cancelled_at)`,
      [orderId, at],
    );
  }

  /**
   * Issues the order's invoice for the event `eventId`, once: a redelivered event, another event for
   * the same order, or a replica handling the same event get the invoice issued first. Throws a
   * retryable error while the order is unknown.
   */
  async issue(orderId: string, eventId: string): Promise<IssueOutcome> {
    let outcome: IssueOutcome | undefined;
    const applied = await this.#inbox.handleOnce(this.options.consumer, eventId, async (tx) => {
      outcome = await this.#issueIn(tx, orderId);
    });
    if (applied && outcome) return outcome;
    // Handled before (the commit happened, the ack may not have): what was decided then.
    const invoice = await this.invoiceOf(orderId);
    return invoice ? { kind: 'issued', invoice } : { kind: 'skipped_cancelled' };
  }

  async #issueIn(tx: SqlTransaction, orderId: string): Promise<IssueOutcome> {
    const { rows } = await tx.query<{ details: OrderDetails | null; cancelled_at: Date | null }>(
      'SELECT details, cancelled_at FROM invoice_orders WHERE order_id = $1 FOR UPDATE',
      [orderId],
    );
    const order = rows[0];
    const existing = await tx.query<{ document: InvoiceDocument }>(
      'SELECT document FROM invoices WHERE order_id = $1',
      [orderId],
    );
    const decision = decideIssue({
      known: Boolean(order?.details),
      cancelled: Boolean(order?.cancelled_at),
      invoiced: existing.rows.length > 0,
    });
    switch (decision) {
      case 'already_issued':
        return { kind: 'issued', invoice: existing.rows[0]!.document };
      case 'skip_cancelled':
        return { kind: 'skipped_cancelled' };
      case 'wait':
        throw new CreateInvoiceError(
          InvoiceErrorCode.OrderUnknown,
          `order ${orderId} is not known yet (order.placed not handled)`,
        );
      case 'issue':
        break;
      default:
        return decision satisfies never;
    }
    const issuedAt = this.options.now?.() ?? new Date();
    const year = invoiceYear(issuedAt);
    const counter = await tx.query<{ last_sequence: number }>(
      `INSERT INTO invoice_counters (year, last_sequence) VALUES ($1, 1)
       ON CONFLICT (year) DO UPDATE SET last_sequence = invoice_counters.last_sequence + 1
       RETURNING last_sequence`,
      [year],
    );
    const sequence = counter.rows[0]!.last_sequence;
    const invoice = draftInvoice(orderId, order!.details!, { year, sequence }, issuedAt);
    await tx.query(
      `INSERT INTO invoices (order_id, year, sequence, number, total, currency, document, issued_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)`,
      [
        orderId,
        year,
        sequence,
        invoice.number,
        invoice.total,
        invoice.currency,
        JSON.stringify(invoice),
        issuedAt,
      ],
    );
    return { kind: 'issued', invoice };
  }

  async invoiceOf(orderId: string): Promise<InvoiceDocument | undefined> {
    const { rows } = await this.store.query<{ document: InvoiceDocument }>(
      'SELECT document FROM invoices WHERE order_id = $1',
      [orderId],
    );
    return rows[0]?.document;
  }

  /** Every invoice of a year in number order (for audits and tests). */
  async invoicesOf(year: number): Promise<{ orderId: string; sequence: number; number: string }[]> {
    const { rows } = await this.store.query<{ order_id: string; sequence: number; number: string }>(
      'SELECT order_id, sequence, number FROM invoices WHERE year = $1 ORDER BY sequence',
      [year],
    );
    return rows.map((r) => ({ orderId: r.order_id, sequence: r.sequence, number: r.number }));
  }
}
