import {
  eventIdFor,
  ignoringOthers,
  InvoiceCreated,
  InvoiceFailed,
  OrderCancelled,
  OrderCancelRequested,
  OrderPlaced,
  PaymentAuthorized,
  stepFailure,
  type OrderingTopology,
} from '@orderflow/contracts';
import { on, type ConsumerSpec, type RetryPolicy, type ServiceContext } from '@orderflow/messaging';
import type { PdfArchive } from './adapters/object-store-pdfs.ts';
import { renderInvoicePdf } from './adapters/pdf.ts';
import type { SqlInvoiceBook } from './adapters/sql-invoice-book.ts';
import { pdfName } from './domain/invoice.ts';

/**
 * create-invoice — table of contents.
 *
 * Consumes `create-invoice-all` (every event of the ORDERING stream, per-order ordering in a replica):
 * - `order.placed` → keeps the order's customer, lines, currency and address (the invoice's content)
 * - `payment.authorized` → issues the invoice once per order: a gapless number per year, net/VAT/total
 *   (VAT table by shipping country) → renders the PDF → stores it in the object store
 *   (`objectStores.invoices`, name `invoice-<number>.pdf`) → publishes `invoice.created`
 *   (id `eventIdFor(InvoiceCreated, orderId)`)
 * - `order.cancel-requested`, `order.cancelled` → the order is not invoiced any more (if not yet)
 * - ignores every other event.
 * A dead-lettered `order.placed` or `payment.authorized` publishes `invoice.failed` (the order is then
 * cancelled with reason `invoice_failed`, after a refund).
 * Serves no endpoints.
 *
 * Once per order: the number, the invoice row and the inbox record commit in one transaction (see
 * `SqlInvoiceBook`). The PDF and the event come after the commit and before the ack, and are repeated
 * on every delivery (deterministic name, content and event id), so a crash after the commit ends in the
 * same PDF and one `invoice.created` (stream de-duplication; consumers' inboxes beyond its window).
 */
export interface CreateInvoiceOptions {
  topology: OrderingTopology;
  book: SqlInvoiceBook;
  pdfs: PdfArchive;
  /** Seller printed on the invoices. */
  seller?: string;
  concurrency?: number;
  /** Attempts before dead-lettering (default 10). */
  maxDeliver?: number;
  retry?: Partial<RetryPolicy>;
}

export function createInvoiceConsumer(options: CreateInvoiceOptions): ConsumerSpec {
  const { topology, book, pdfs } = options;
  const cancelled = (orderId: string, at: string) => book.markCancelled(orderId, new Date(at));
  return {
    ...topology.consumers.createInvoice.all,
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 10,
    ...(options.retry && { retry: options.retry }),
    handlers: ignoringOthers([
      on(OrderPlaced, async (event) => {
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
        context.working();
        const pdf = await pdfs.store(pdfName(invoice.number), () =>
          renderInvoicePdf(invoice, options.seller),
        );
        await context.publish(
          InvoiceCreated,
          {
            orderId,
            invoiceNumber: invoice.number,
            year: invoice.year,
            sequence: invoice.sequence,
            total: { amount: invoice.total, currency: invoice.currency },
            pdf,
            issuedAt: invoice.issuedAt,
          },
          {
            subject: topology.subjects.invoice(orderId),
            about: orderId,
            id: eventIdFor(InvoiceCreated, orderId),
          },
        );
      }),
      on(OrderCancelRequested, (event) => cancelled(event.data.orderId, event.data.requestedAt)),
      on(OrderCancelled, (event) => cancelled(event.data.orderId, event.data.cancelledAt)),
    ]),
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
  };
}

/** Starts the consumer on a running service (see `main.ts`). */
export async function startCreateInvoice(
  context: ServiceContext,
  options: CreateInvoiceOptions,
): Promise<void> {
  await context.transport.consume(createInvoiceConsumer(options));
}
