import {
  CreditNoteIssued,
  CustomerRegistered,
  DeliveryAssigned,
  ignoringOthers,
  InvoiceCreated,
  OrderCancelled,
  onOrderPlaced,
  PaymentDeclined,
  type OrderingTopology,
} from '@orderflow/contracts';
import {
  isTransient,
  on,
  type ConsumerSpec,
  type Envelope,
  type HandlerContext,
  type RetryPolicy,
  type ServiceContext,
} from '@orderflow/messaging';
import { setTimeout as sleep } from 'node:timers/promises';
import type { InvoicePdfs } from './adapters/object-store-pdfs.ts';
import type { Attachment, Mailer } from './adapters/smtp-mailer.ts';
import type { SqlMailLog } from './adapters/sql-mail-log.ts';
import { composeMail, type Contact, type MailFacts } from './domain/mails.ts';
import { EmailErrorCode, EmailNotifyError } from './errors.ts';

/**
 * email-notify — table of contents.
 *
 * Consumes `email-notify-all` (every event of the ORDERING stream, per-order ordering), and mails:
 * - `customer.registered` → welcome
 * - `order.placed` → order received (and remembers the order's contact)
 * - `payment.declined` → payment declined
 * - `invoice.created` → invoice, with the PDF from the object store attached — unless the order's
 *   cancellation (or credit note) mail is out already: no invoice mail after the cancellation
 * - `delivery.assigned` → courier assigned
 * - `order.cancelled` → cancelled (with the refunded amount)
 * - `credit-note.issued` → credit note, its PDF attached, and the invoice's PDF too when the invoice
 *   mail was not sent (so the customer gets both documents, after the cancellation)
 * and ignores every other event. Serves no endpoints, publishes nothing.
 *
 * Exactly one mail per (order, kind) — per (customer, welcome) — under redelivery, duplicates and
 * replicas: before the SMTP call a row keyed (key, kind) is claimed in one transaction (`SqlMailLog`);
 * a second claim finds it `sent` (skip) or being sent (retry later), and after the server's `250` it is
 * marked `sent`. The one window left is a crash between the `250` and that mark: the claim expires after
 * `claimLeaseMs` and the mail is sent again, with the same `Message-ID` so a mail client can fold it.
 */
export interface EmailNotifyOptions {
  topology: OrderingTopology;
  log: SqlMailLog;
  mailer: Mailer;
  pdfs: InvoicePdfs;
  /** How long a handler waits for a contact or another replica's claim before a retry (default 5000 ms). */
  settleMs?: number;
  /** Domain of the stable `Message-ID`s (default `orderflow.local`). */
  messageIdDomain?: string;
  concurrency?: number;
  /** Attempts before dead-lettering (default 10). */
  maxDeliver?: number;
  retry?: Partial<RetryPolicy>;
}

export function emailNotifyConsumer(options: EmailNotifyOptions): ConsumerSpec {
  const { topology, log, mailer, pdfs } = options;
  const domain = options.messageIdDomain ?? 'orderflow.local';
  const settleMs = options.settleMs ?? 5_000;
  const settlePollMs = 50;

  /**
   * Polls `attempt` for up to `settleMs` before giving up with its error. Replicas may handle two events
   * of one order at once (per-key order holds within a process only); waiting here for the other replica
   * to finish is cheaper than a nak, which would block the key's lane in this process until redelivery.
   */
  async function settle<T>(
    attempt: () => Promise<T | undefined>,
    fail: () => Error,
    context: HandlerContext,
  ): Promise<T> {
    const deadline = Date.now() + settleMs;
    for (;;) {
      const value = await attempt();
      if (value !== undefined) return value;
      if (Date.now() >= deadline) throw fail();
      context.working();
      await sleep(settlePollMs);
    }
  }

  const contactOf = (orderId: string, context: HandlerContext): Promise<Contact> =>
    settle(
      () => log.contact(orderId),
      () => new EmailNotifyError(EmailErrorCode.ContactUnknown, `no contact known for order ${orderId} yet`),
      context,
    );

  /** The PDF at `location`, as a mail attachment named `filename`; a missing one is retried later. */
  async function attachment(
    location: { bucket: string; name: string },
    filename: string,
  ): Promise<Attachment> {
    const pdf = await pdfs.fetch(location);
    if (!pdf) {
      throw new EmailNotifyError(
        EmailErrorCode.AttachmentMissing,
        `PDF ${location.bucket}/${location.name} not found`,
      );
    }
    return { filename, contentType: 'application/pdf', content: pdf };
  }

  async function mail(
    event: Envelope,
    context: HandlerContext,
    facts: MailFacts,
    contact: Contact,
    attachments?: () => Promise<Attachment[]>,
    /** Remember this order's contact in the claim's statement (`order.placed`). */
    remember?: { orderId: string },
  ): Promise<void> {
    const composed = composeMail(facts, contact, domain);
    const claimed = {
      ...composed,
      eventId: event.id,
      ...(remember && { contact: { orderId: remember.orderId, email: contact.email, name: contact.name } }),
    };
    const decision = await settle(
      async () => {
        const claim = await log.claim(claimed);
        return claim === 'busy' ? undefined : claim;
      },
      () =>
        new EmailNotifyError(
          EmailErrorCode.Busy,
          `the ${facts.kind} mail for ${composed.key} is being sent elsewhere`,
        ),
      context,
    );
    const mailLog = { key: composed.key, kind: facts.kind, messageId: composed.messageId };
    if (decision === 'skip') {
      context.logger.debug(mailLog, 'mail already sent');
      return;
    }
    try {
      await mailer.send(composed, attachments ? await attachments() : []);
    } catch (error) {
      await log.release(composed.key, composed.kind);
      throw error;
    }
    context.logger.info(mailLog, 'mail sent');
    // The mail is out: recording that must not fail the handler, or its retry would find its own claim
    // still held and send the mail again once the lease expired (seen with PostgreSQL down).
    await untilRecorded(() => log.markSent(composed.key, composed.kind), context);
    context.logger.debug(mailLog, 'mail recorded as sent');
  }

  return {
    ...topology.consumers.emailNotify.all,
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 10,
    ...(options.retry && { retry: options.retry }),
    handlers: ignoringOthers([
      on(CustomerRegistered, (event, context) =>
        mail(event, context, { kind: 'welcome', customerId: event.data.customerId }, event.data),
      ),
      ...onOrderPlaced(async (event, context) => {
        const order = event.data;
        // The contact is remembered in the claim's statement (one round trip, one commit).
        const items = order.lines.reduce((n, line) => n + line.quantity, 0);
        await mail(
          event,
          context,
          {
            kind: 'order_placed',
            orderId: order.orderId,
            total: order.total,
            currency: order.currency,
            items,
          },
          order.customer,
          undefined,
          { orderId: order.orderId },
        );
      }),
      on(PaymentDeclined, async (event, context) =>
        mail(
          event,
          context,
          { kind: 'payment_declined', orderId: event.data.orderId, code: event.data.code },
          await contactOf(event.data.orderId, context),
        ),
      ),
      on(InvoiceCreated, async (event, context) => {
        const invoice = event.data;
        // invoice.created can land in the stream after order.cancelled (create-invoice rendered the PDF
        // while the refund went through): an invoice mail then would follow the cancellation mail.
        if (await log.claimedAny(invoice.orderId, ['order_cancelled', 'credit_note'])) {
          context.logger.info(
            { orderId: invoice.orderId, invoiceNumber: invoice.invoiceNumber },
            'no invoice mail after the cancellation: the credit note mail carries the invoice',
          );
          return;
        }
        await mail(
          event,
          context,
          {
            kind: 'invoice',
            orderId: invoice.orderId,
            invoiceNumber: invoice.invoiceNumber,
            total: invoice.total.amount,
            currency: invoice.total.currency,
          },
          await contactOf(invoice.orderId, context),
          async () => [await attachment(invoice.pdf, `invoice-${invoice.invoiceNumber}.pdf`)],
        );
      }),
      on(DeliveryAssigned, async (event, context) =>
        mail(
          event,
          context,
          { kind: 'courier_assigned', orderId: event.data.orderId, courierName: event.data.courierName },
          await contactOf(event.data.orderId, context),
        ),
      ),
      on(CreditNoteIssued, async (event, context) => {
        const note = event.data;
        // credit-note.issued comes after the order's invoice.created (create-invoice publishes it so): an
        // invoice mail not sent by now will not be (it would follow the cancellation), so this one carries
        // the invoice. (One in flight on another replica right now makes the customer get it twice.)
        const withInvoice = (await log.sentCount(note.orderId, 'invoice')) === 0;
        await mail(
          event,
          context,
          {
            kind: 'credit_note',
            orderId: note.orderId,
            creditNoteNumber: note.creditNoteNumber,
            invoiceNumber: note.invoiceNumber,
            total: note.total.amount,
            currency: note.total.currency,
            withInvoice,
          },
          await contactOf(note.orderId, context),
          async () => [
            await attachment(note.pdf, `credit-note-${note.creditNoteNumber}.pdf`),
            ...(withInvoice
              ? [
                  await attachment(
                    { bucket: note.pdf.bucket, name: topology.objectStores.invoicePdf(note.invoiceNumber) },
                    `invoice-${note.invoiceNumber}.pdf`,
                  ),
                ]
              : []),
          ],
        );
      }),
      on(OrderCancelled, async (event, context) =>
        mail(
          event,
          context,
          {
            kind: 'order_cancelled',
            orderId: event.data.orderId,
            reason: event.data.reason,
            ...(event.data.refunded && { refunded: event.data.refunded }),
          },
          await contactOf(event.data.orderId, context),
        ),
      ),
    ]),
  };
}

/** Starts the consumer on a running service (see `main.ts`). */
export async function startEmailNotify(context: ServiceContext, options: EmailNotifyOptions): Promise<void> {
  await context.transport.consume(emailNotifyConsumer(options));
}

/** Retries `write` while it fails with a dependency outage (backoff up to 1 s); other errors are thrown. */
async function untilRecorded(write: () => Promise<void>, context: HandlerContext): Promise<void> {
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 1_000)) {
    try {
      return await write();
    } catch (error) {
      if (!isTransient(error)) throw error;
    }
    context.working();
    await sleep(delayMs);
  }
}
