import { SqlInbox, type Migration, type SqlStore, type SqlTransaction } from '@orderflow/sql';
import type { RefundReason } from '@orderflow/contracts';
import {
  decideCredit,
  decideIssue,
  draftCreditNote,
  draftInvoice,
  invoiceYear,
  type CreditNoteDocument,
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
  {
    version: 2,
    name: 'credit notes, and when an invoice event was published',
    // Invoices issued before this migration were published on their first delivery.
    sql: `
      ALTER TABLE invoices ADD COLUMN published_at timestamptz;
      UPDATE invoices SET published_at = issued_at;
      CREATE TABLE credit_note_counters (
        year integer PRIMARY KEY,
        last_sequence integer NOT NULL CHECK (last_sequence > 0)
      );
      CREATE TABLE credit_notes (
        order_id text PRIMARY KEY REFERENCES invoices (order_id),
        invoice_number text NOT NULL UNIQUE REFERENCES invoices (number),
        year integer NOT NULL,
        sequence integer NOT NULL,
        number text NOT NULL UNIQUE,
        total bigint NOT NULL,
        currency text NOT NULL,
        document jsonb NOT NULL,
        issued_at timestamptz NOT NULL,
        published_at timestamptz,
        UNIQUE (year, sequence)
      );`,
  },
];

/**
 * Outcome of handling a `payment.authorized`. `published`: its `invoice.created` was stored in the
 * stream (recorded by {@link SqlInvoiceBook.markPublished}).
 */
export type IssueOutcome =
  { kind: 'issued'; invoice: InvoiceDocument; published: boolean } | { kind: 'skipped_cancelled' };

/**
 * Outcome of handling a `payment.refunded`: the order's credit note and the invoice it cancels (with
 * whether each one's event was published yet), or `not_invoiced` (nothing to cancel).
 */
export type CreditOutcome =
  | {
      kind: 'credited';
      creditNote: CreditNoteDocument;
      creditNotePublished: boolean;
      invoice: InvoiceDocument;
      invoicePublished: boolean;
    }
  | { kind: 'not_invoiced' };

/** The documents a book keeps, and what their event's publication is recorded in. */
const DOCUMENT_TABLE = { invoice: 'invoices', credit_note: 'credit_notes' } as const;
export type DocumentKind = keyof typeof DOCUMENT_TABLE;

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
 *
 * Credit notes are numbered the same way from their own counter (`credit_note_counters`): one per
 * invoiced order that is refunded, in the transaction that records the refund's inbox entry and marks
 * the order cancelled. The refund takes the same order row lock, so it serialises with the invoice:
 * an invoice committed first gets its credit note; a refund committed first means no invoice.
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
    const invoice = await this.#document('invoice', orderId);
    return invoice
      ? { kind: 'issued', invoice: invoice.document, published: invoice.published }
      : { kind: 'skipped_cancelled' };
  }

  /**
   * Handles the order's refund (event `eventId`) once: the order is cancelled from now on and, if it
   * was invoiced, its invoice is cancelled by a credit note with the next number of the credit-note
   * series. A redelivered event, another refund event for the order, or a replica get the credit note
   * issued first.
   */
  async credit(
    orderId: string,
    eventId: string,
    refund: { reason: RefundReason; refundId: string; refundedAt: Date },
  ): Promise<CreditOutcome> {
    // Whether applied now or before (the commit happened, the ack may not have), the book has the answer.
    await this.#inbox.handleOnce(this.options.consumer, eventId, (tx) => this.#creditIn(tx, orderId, refund));
    const [creditNote, invoice] = await Promise.all([
      this.#document('credit_note', orderId),
      this.#document('invoice', orderId),
    ]);
    if (!creditNote || !invoice) return { kind: 'not_invoiced' };
    return {
      kind: 'credited',
      creditNote: creditNote.document,
      creditNotePublished: creditNote.published,
      invoice: invoice.document,
      invoicePublished: invoice.published,
    };
  }

  async #creditIn(
    tx: SqlTransaction,
    orderId: string,
    refund: { reason: RefundReason; refundId: string; refundedAt: Date },
  ): Promise<void> {
    // The upsert takes the order row's lock (also for an order whose order.placed is not stored yet).
    await tx.query(
      `INSERT INTO invoice_orders (order_id, cancelled_at) VALUES ($1, $2)
       ON CONFLICT (order_id) DO UPDATE SET cancelled_at = COALESCE(invoice_orders.cancelled_at, EXCLUDED.cancelled_at)`,
      [orderId, refund.refundedAt],
    );
    const invoice = await tx.query<{ document: InvoiceDocument }>(
      'SELECT document FROM invoices WHERE order_id = $1',
      [orderId],
    );
    const credited = await tx.query('SELECT 1 FROM credit_notes WHERE order_id = $1', [orderId]);
    const decision = decideCredit({ invoiced: invoice.rows.length > 0, credited: credited.rows.length > 0 });
    switch (decision) {
      case 'not_invoiced':
      case 'already_credited':
        return;
      case 'credit':
        break;
      default:
        return decision satisfies never;
    }
    const issuedAt = this.options.now?.() ?? new Date();
    const year = invoiceYear(issuedAt);
    const counter = await tx.query<{ last_sequence: number }>(
      `INSERT INTO credit_note_counters (year, last_sequence) VALUES ($1, 1)
       ON CONFLICT (year) DO UPDATE SET last_sequence = credit_note_counters.last_sequence + 1
       RETURNING last_sequence`,
      [year],
    );
    const sequence = counter.rows[0]!.last_sequence;
    const note = draftCreditNote(invoice.rows[0]!.document, { year, sequence }, issuedAt, refund);
    await tx.query(
      `INSERT INTO credit_notes (order_id, invoice_number, year, sequence, number, total, currency, document, issued_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9)`,
      [
        orderId,
        note.invoiceNumber,
        year,
        sequence,
        note.number,
        note.total,
        note.currency,
        JSON.stringify(note),
        issuedAt,
      ],
    );
  }

  /** Records that the document's event (`invoice.created`, `credit-note.issued`) is in the stream. */
  async markPublished(kind: DocumentKind, orderId: string): Promise<void> {
    await this.store.query(
      `UPDATE ${DOCUMENT_TABLE[kind]} SET published_at = $2 WHERE order_id = $1 AND published_at IS NULL`,
      [orderId, this.options.now?.() ?? new Date()],
    );
  }

  async #document<K extends DocumentKind>(
    kind: K,
    orderId: string,
  ): Promise<
    { document: K extends 'invoice' ? InvoiceDocument : CreditNoteDocument; published: boolean } | undefined
  > {
    const { rows } = await this.store.query<{
      document: K extends 'invoice' ? InvoiceDocument : CreditNoteDocument;
      published_at: Date | null;
    }>(`SELECT document, published_at FROM ${DOCUMENT_TABLE[kind]} WHERE order_id = $1`, [orderId]);
    const row = rows[0];
    return row && { document: row.document, published: row.published_at !== null };
  }

  async #issueIn(tx: SqlTransaction, orderId: string): Promise<IssueOutcome> {
    const { rows } = await tx.query<{ details: OrderDetails | null; cancelled_at: Date | null }>(
      'SELECT details, cancelled_at FROM invoice_orders WHERE order_id = $1 FOR UPDATE',
      [orderId],
    );
    const order = rows[0];
    const existing = await tx.query<{ document: InvoiceDocument; published_at: Date | null }>(
      'SELECT document, published_at FROM invoices WHERE order_id = $1',
      [orderId],
    );
    const decision = decideIssue({
      known: Boolean(order?.details),
      cancelled: Boolean(order?.cancelled_at),
      invoiced: existing.rows.length > 0,
    });
    switch (decision) {
      case 'already_issued':
        return {
          kind: 'issued',
          invoice: existing.rows[0]!.document,
          published: existing.rows[0]!.published_at !== null,
        };
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
    return { kind: 'issued', invoice, published: false };
  }

  async invoiceOf(orderId: string): Promise<InvoiceDocument | undefined> {
    const { rows } = await this.store.query<{ document: InvoiceDocument }>(
      'SELECT document FROM invoices WHERE order_id = $1',
      [orderId],
    );
    return rows[0]?.document;
  }

  async creditNoteOf(orderId: string): Promise<CreditNoteDocument | undefined> {
    return (await this.#document('credit_note', orderId))?.document;
  }

  /** Every credit note of a year in number order (for audits and tests). */
  async creditNotesOf(
    year: number,
  ): Promise<{ orderId: string; sequence: number; number: string; invoiceNumber: string }[]> {
    const { rows } = await this.store.query<{
      order_id: string;
      sequence: number;
      number: string;
      invoice_number: string;
    }>(
      'SELECT order_id, sequence, number, invoice_number FROM credit_notes WHERE year = $1 ORDER BY sequence',
      [year],
    );
    return rows.map((r) => ({
      orderId: r.order_id,
      sequence: r.sequence,
      number: r.number,
      invoiceNumber: r.invoice_number,
    }));
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
