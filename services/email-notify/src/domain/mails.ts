import { formatMoney, type CancellationReason, type Currency } from '@orderflow/contracts';

/** The mails a customer gets; at most one of each kind per order (per customer for `welcome`). */
export const MAIL_KINDS = [
  'welcome',
  'order_placed',
  'payment_declined',
  'invoice',
  'courier_assigned',
  'order_cancelled',
  'credit_note',
] as const;
export type MailKind = (typeof MAIL_KINDS)[number];

/** Who a mail goes to, as learnt from `customer.registered` / `order.placed`. */
export interface Contact {
  email: string;
  name: string;
}

/** Facts a mail is written from, one variant per kind. */
export type MailFacts =
  | { kind: 'welcome'; customerId: string }
  | { kind: 'order_placed'; orderId: string; total: number; currency: Currency; items: number }
  | { kind: 'payment_declined'; orderId: string; code: string }
  | { kind: 'invoice'; orderId: string; invoiceNumber: string; total: number; currency: Currency }
  | { kind: 'courier_assigned'; orderId: string; courierName: string }
  | {
      kind: 'order_cancelled';
      orderId: string;
      reason: string;
      refunded?: { amount: number; currency: Currency };
    }
  | {
      kind: 'credit_note';
      orderId: string;
      creditNoteNumber: string;
      invoiceNumber: string;
      total: number;
      currency: Currency;
      /** The invoice's PDF goes with it: its own mail was not sent (it would have come after the cancellation). */
      withInvoice: boolean;
    };

/** A composed mail, before transport. */
export interface Mail {
  /** Order id (customer id for `welcome`): with `kind`, the unit of exactly-once. */
  key: string;
  kind: MailKind;
  to: string;
  subject: string;
  text: string;
  /** Stable across retries, so a receiver can recognise a resend. */
  messageId: string;
  headers: Record<string, string>;
}

export const KIND_HEADER = 'X-Orderflow-Kind';
export const KEY_HEADER = 'X-Orderflow-Key';

const CANCEL_REASONS: Readonly<Record<CancellationReason, string>> = {
  payment_declined: 'your payment was declined',
  delivery_unavailable: 'no courier was available',
  customer_request: 'you asked us to',
  payment_failed: 'we could not take your payment',
  invoice_failed: 'we could not issue your invoice',
  delivery_failed: 'we could not arrange the delivery',
};

export function keyOf(facts: MailFacts): string {
  return facts.kind === 'welcome' ? facts.customerId : facts.orderId;
}

/** Given the facts and the contact, the mail to send. Pure. */
export function composeMail(facts: MailFacts, contact: Contact, domain: string): Mail {
  const key = keyOf(facts);
  const hello = `Hello ${contact.name},\n\n`;
  const bye = '\n\nThank you for shopping with Orderflow.\n';
  let subject: string;
  let body: string;
  switch (facts.kind) {
    case 'welcome':
      subject = 'Welcome to Orderflow';
      body = 'your account is ready.';
      break;
    case 'order_placed':
      subject = `Order ${facts.orderId} received`;
      body = `we received your order of ${facts.items} item(s) for ${formatMoney(facts.total, facts.currency)}. We will let you know once the payment went through.`;
      break;
    case 'payment_declined':
      subject = `Payment declined for order ${facts.orderId}`;
      body = `your card was declined (${facts.code}). The order was not placed; nothing was charged.`;
      break;
    case 'invoice':
      subject = `Invoice ${facts.invoiceNumber} for order ${facts.orderId}`;
      body = `please find attached invoice ${facts.invoiceNumber} over ${formatMoney(facts.total, facts.currency)}.`;
      break;
    case 'courier_assigned':
      subject = `Order ${facts.orderId} is on its way soon`;
      body = `${facts.courierName} will deliver your order.`;
      break;
    case 'order_cancelled':
      subject = `Order ${facts.orderId} cancelled`;
      body =
        `your order was cancelled because ${(CANCEL_REASONS as Readonly<Record<string, string>>)[facts.reason] ?? facts.reason}.` +
        (facts.refunded
          ? ` ${formatMoney(facts.refunded.amount, facts.refunded.currency)} will be refunded to your card.`
          : '');
      break;
    case 'credit_note':
      subject = `Credit note ${facts.creditNoteNumber} for order ${facts.orderId}`;
      body =
        `please find attached credit note ${facts.creditNoteNumber} over ${formatMoney(facts.total, facts.currency)}: ` +
        `it cancels invoice ${facts.invoiceNumber} of your cancelled order in full, and the amount is refunded to your card.` +
        (facts.withInvoice ? ` Invoice ${facts.invoiceNumber} is attached as well, for your records.` : '');
      break;
    default:
      return facts satisfies never;
  }
  return {
    key,
    kind: facts.kind,
    to: contact.email,
    subject,
    text: `${hello}${body}${bye}`,
    messageId: `<${facts.kind}.${key}@${domain}>`,
    headers: { [KIND_HEADER]: facts.kind, [KEY_HEADER]: key },
  };
}

/** The record of a mail decision: one per (key, kind). */
export interface MailRecord {
  status: 'sending' | 'sent';
  claimedAt: Date;
}

/**
 * Given the record for (key, kind), when a handler wants to send it, then: `send` (nobody has, or a
 * previous sender's claim expired — it crashed), `skip` (sent already), `busy` (another replica is
 * sending right now: try again later).
 */
export function decideSend(
  record: MailRecord | undefined,
  now: Date,
  leaseMs: number,
): 'send' | 'skip' | 'busy' {
  if (!record) return 'send';
  if (record.status === 'sent') return 'skip';
  return now.getTime() - record.claimedAt.getTime() >= leaseMs ? 'send' : 'busy';
}
