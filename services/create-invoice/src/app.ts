import {
  CreditNoteIssued,
  eventIdFor,
  ignoringOthers,
  InvoiceCreated,
  InvoiceFailed,
  OrderCancelled,
  OrderCancelRequested,
  onOrderPlaced,
  OrderPlaced,
  PaymentAuthorized,
  PaymentRefunded,
  stepFailure,
  type OrderingTopology,
} from '@orderflow/contracts';
import {
  on,
  type ConsumerSpec,
  type HandlerContext,
  type RetryPolicy,
  type ServiceContext,
} from '@orderflow/messaging';
import type { PdfArchive } from './adapters/object-store-pdfs.ts';
import { renderCreditNotePdf, renderInvoicePdf } from './adapters/pdf.ts';
import type { SqlInvoiceBook } from './adapters/sql-invoice-book.ts';
import {
  creditNotePdfName,
  pdfName,
  type CreditNoteDocument,
  type InvoiceDocument,
} from './domain/invoice.ts';

/**
 * create-invoice — table of contents.
 *
 * Consumes `create-invoice-all` (every event of the ORDERING stream, per-order ordering in a replica):
 * - `order.placed` → keeps the order's customer, lines, currency and address (the invoice's content)
 * - `payment.authorized` → issues the invoice once per order: a gapless number per year, net/VAT/total
 *   (VAT table by shipping country) → renders the PDF → stores it in the object store
 *   (`objectStores.invoices`, name `invoice-<number>.pdf`) → publishes `invoice.created`
 *   (id `eventIdFor(InvoiceCreated, orderId)`)
 * - `payment.refunded` → the order is not invoiced any more; if it was, its invoice is cancelled by a
 *   credit note once per order: a gapless number per year in its own series (`CN-<year>-<sequence>`)
 *   → PDF `credit-note-<number>.pdf` in the same object store → `credit-note.issued`
 *   (id `eventIdFor(CreditNoteIssued, orderId)`), always after the order's `invoice.created`
 * - `order.cancel-requested`, `order.cancelled` → the order is not invoiced any more (if not yet)
 * - ignores every other event.
 * A dead-lettered `order.placed` or `payment.authorized` publishes `invoice.failed` (the order is then
 * cancelled with reason `invoice_failed`, after a refund).
 * Serves no endpoints.
 *
 * Once per order: the number, the document's row and the inbox record commit in one transaction (see
 * `SqlInvoiceBook`). The PDF and the event come after the commit and before the ack, on every delivery
 * until the event's publication is recorded (deterministic name, content and event id), so a crash
 * after the commit ends in the same PDF and one event (stream de-duplication; consumers' inboxes beyond
 * its window). A credit note's event is published only once its invoice's event is: if the invoice's
 * publication is not recorded yet (a crash between commit and publish, or another replica still
 * rendering it), the refund's handler publishes `invoice.created` first, so every consumer sees the
 * invoice before the credit note that cancels it.
 */
export interface CreateInvoiceOptions {
  topology: OrderingTopology;
  book: SqlInvoiceBook;
  pdfs: PdfArchive;
  /** Seller printed on the invoices and credit notes. */
  seller?: string;
  concurrency?: number;
  /** Attempts before dead-lettering (default 10). */
  maxDeliver?: number;
  retry?: Partial<RetryPolicy>;
}

export function createInvoiceConsumer(options: CreateInvoiceOptions): ConsumerSpec {
  const { topology, book, pdfs } = options;
  const cancelled = (orderId: string, at: string) => book.markCancelled(orderId, new Date(at));

  /** Stores the invoice's PDF and publishes `invoice.created`, then records that it is published. */
  const publishInvoice = async (invoice: InvoiceDocument, context: HandlerContext): Promise<void> => {
    const pdf = await pdfs.store(pdfName(invoice.number), () => renderInvoicePdf(invoice, options.seller));
    await context.publish(
      InvoiceCreated,
      {
        orderId: invoice.orderId,
        invoiceNumber: invoice.number,
        year: invoice.year,
        sequence: invoice.sequence,
        total: { amount: invoice.total, currency: invoice.currency },
        pdf,
        issuedAt: invoice.issuedAt,
      },
      {
        subject: topology.subjects.invoice(invoice.orderId),
        about: invoice.orderId,
        id: eventIdFor(InvoiceCreated, invoice.orderId),
      },
    );
    await book.markPublished('invoice', invoice.orderId);
  };

  /** Stores the credit note's PDF and publishes `credit-note.issued`, then records that it is published. */
  const publishCreditNote = async (note: CreditNoteDocument, context: HandlerContext): Promise<void> => {
    const pdf = await pdfs.store(creditNotePdfName(note.number), () =>
      renderCreditNotePdf(note, options.seller),
    );
    await context.publish(
      CreditNoteIssued,
      {
        orderId: note.orderId,
        creditNoteNumber: note.number,
        year: note.year,
        sequence: note.sequence,
        invoiceNumber: note.invoiceNumber,
        total: { amount: note.total, currency: note.currency },
        reason: note.reason,
        refundId: note.refundId,
        pdf,
        issuedAt: note.issuedAt,
      },
      {
        subject: topology.subjects.invoice(note.orderId),
        about: note.orderId,
        id: eventIdFor(CreditNoteIssued, note.orderId),
      },
    );
    await book.markPublished('credit_note', note.orderId);
  };

  return {
    ...topology.consumers.createInvoice.all,
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 10,
    ...(options.retry && { retry: options.retry }),
    // The order cannot be invoiced: order-storage cancels it (and payment-processor refunds).
    onDeadLetter: async (event, error, context) => {
      if (event.type !== OrderPlaced.type && event.type !== PaymentAuthorized.type) return;
      const { orderId } = event.data as { orderId: string };
      await context.publish(InvoiceFailed, stepFailure(orderId, event.type, error, new Date()), {
        subject: topology.subjects.invoice(orderId),
        about: orderId,
        id: eventIdFor(InvoiceFailed, orderId),
      });
    },
    handlers: ignoringOthers([
      ...onOrderPlaced(async (event) => {
        const o = event.data;
        await book.rememberOrder(o.orderId, {
          customer: { name: o.customer.name, email: o.customer.email },
          lines: o.lines,
          currency: o.currency,
          total: o.total,
          shippingAddress: o.shippingAddress,
          placedAt: o.placedAt,
        });
      }),
      on(PaymentAuthorized, async (event, context) => {
        const { orderId, amount } = event.data;
        const outcome = await book.issue(orderId, event.id);
        if (outcome.kind === 'skipped_cancelled') {
          context.logger.info({ orderId }, 'order cancelled before it was invoiced: no invoice');
          return;
        }
        const invoice = outcome.invoice;
        if (invoice.total !== amount.amount || invoice.currency !== amount.currency) {
          context.logger.warn({ orderId, invoice: invoice.total, charged: amount }, 'charged amount differs');
        }
        if (outcome.published) return;
        context.working();
        await publishInvoice(invoice, context);
      }),
      on(PaymentRefunded, async (event, context) => {
        const { orderId, reason, refundId, refundedAt } = event.data;
        const outcome = await book.credit(orderId, event.id, {
          reason,
          refundId,
          refundedAt: new Date(refundedAt),
        });
        if (outcome.kind === 'not_invoiced') {
          context.logger.info({ orderId }, 'refunded before it was invoiced: no credit note');
          return;
        }
        if (outcome.creditNotePublished) return;
        context.working();
        if (!outcome.invoicePublished) await publishInvoice(outcome.invoice, context);
        await publishCreditNote(outcome.creditNote, context);
      }),
      on(OrderCancelRequested, (event) => cancelled(event.data.orderId, event.data.requestedAt)),
      on(OrderCancelled, (event) => cancelled(event.data.orderId, event.data.cancelledAt)),
    ]),
  };
}

/** Starts the consumer on a running service (see `main.ts`). */
export async function startCreateInvoice(
  context: ServiceContext,
  options: CreateInvoiceOptions,
): Promise<void> {
  await context.transport.consume(createInvoiceConsumer(options));
}
