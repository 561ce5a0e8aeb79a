import { OrderingTopology } from '@orderflow/contracts';
import type { Address, Currency, OrderLine, RefundReason } from '@orderflow/contracts';

/*
 * Invoices as pure functions: numbers, tax, totals. Prices in an order are gross (VAT included, as a
 * shop shows them to consumers); the invoice states the VAT contained in the total, so its total is
 * exactly the amount charged. All amounts are integer minor units of the order's currency.
 */

/**
 * VAT rates in basis points (1900 = 19 %) by shipping country (ISO 3166-1 alpha-2): the standard rate
 * of each country the shop ships to. A country not listed is outside the VAT area (export, 0 %);
 * the US has no VAT (sales tax is out of scope).
 */
export const VAT_RATES_BP: Readonly<Record<string, number>> = {
  AT: 2000,
  BE: 2100,
  CH: 810,
  CZ: 2100,
  DE: 1900,
  DK: 2500,
  ES: 2100,
  FR: 2000,
  GB: 2000,
  IT: 2200,
  NL: 2100,
  NO: 2500,
  PL: 2300,
  SE: 2500,
  US: 0,
};

export function vatRateFor(country: string): number {
  return VAT_RATES_BP[country] ?? 0;
}

/** What create-invoice keeps of an order (from `order.placed`). */
export interface OrderDetails {
  customer: { name: string; email: string };
  lines: OrderLine[];
  currency: Currency;
  /** Gross total in minor units. */
  total: number;
  shippingAddress: Address;
  placedAt: string;
}

/** The invoice as issued: everything the PDF and `invoice.created` show. */
export interface InvoiceDocument {
  orderId: string;
  number: string;
  year: number;
  sequence: number;
  issuedAt: string;
  customer: { name: string; email: string };
  billingAddress: Address;
  currency: Currency;
  lines: OrderLine[];
  /** VAT rate in basis points. */
  vatRateBp: number;
  net: number;
  vat: number;
  /** Gross total = the amount charged. */
  total: number;
}

/** `<year>-<sequence, at least 6 digits>`, e.g. `2026-000042`. */
export function invoiceNumber(year: number, sequence: number): string {
  return `${year}-${String(sequence).padStart(6, '0')}`;
}

/** Name of the PDF in the object store: one deterministic name per invoice (the contracts' builder). */
export function pdfName(number: string): string {
  return OrderingTopology.objectStores.invoicePdf(number);
}

/** Splits a gross amount into net and the VAT it contains (VAT rounded half up to the minor unit). */
export function splitGross(gross: number, rateBp: number): { net: number; vat: number } {
  const vat = Math.round((gross * rateBp) / (10_000 + rateBp));
  return { net: gross - vat, vat };
}

/** The invoice of an order, given its number and issue time. */
export function draftInvoice(
  orderId: string,
  order: OrderDetails,
  numbering: { year: number; sequence: number },
  issuedAt: Date,
): InvoiceDocument {
  const vatRateBp = vatRateFor(order.shippingAddress.country);
  const total = order.lines.reduce((sum, line) => sum + line.lineTotal, 0);
  const { net, vat } = splitGross(total, vatRateBp);
  return {
    orderId,
    number: invoiceNumber(numbering.year, numbering.sequence),
    year: numbering.year,
    sequence: numbering.sequence,
    issuedAt: issuedAt.toISOString(),
    customer: order.customer,
    billingAddress: order.shippingAddress,
    currency: order.currency,
    lines: order.lines,
    vatRateBp,
    net,
    vat,
    total,
  };
}

/** The year an invoice issued at `at` is numbered in (UTC). */
export function invoiceYear(at: Date): number {
  return at.getUTCFullYear();
}

/** What to do with a `payment.authorized`, given what is known of the order. */
export type IssueDecision = 'wait' | 'skip_cancelled' | 'already_issued' | 'issue';

export function decideIssue(order: { known: boolean; cancelled: boolean; invoiced: boolean }): IssueDecision {
  if (order.invoiced) return 'already_issued';
  if (order.cancelled) return 'skip_cancelled';
  if (!order.known) return 'wait';
  return 'issue';
}

/*
 * Credit notes. A refunded order's invoice is not deleted or changed (numbers are gapless and issued
 * documents are final): it is cancelled by a credit note, a document of its own with its own gapless
 * number series per year (`CN-<year>-<sequence>`), that repeats the invoice's lines and tax and credits
 * its whole total. Invoices issued minus credit notes issued is the number of orders the shop keeps.
 */

/** The credit note as issued: everything the PDF and `credit-note.issued` show. */
export interface CreditNoteDocument {
  orderId: string;
  /** `CN-<year>-<sequence, at least 6 digits>`. */
  number: string;
  year: number;
  sequence: number;
  issuedAt: string;
  /** The invoice it cancels. */
  invoiceNumber: string;
  invoiceIssuedAt: string;
  customer: { name: string; email: string };
  billingAddress: Address;
  currency: Currency;
  lines: OrderLine[];
  vatRateBp: number;
  /** Amounts credited (positive numbers; the document states they are credited). */
  net: number;
  vat: number;
  total: number;
  reason: RefundReason;
  /** The PSP's refund id. */
  refundId: string;
}

/** `CN-<year>-<sequence, at least 6 digits>`, e.g. `CN-2026-000007`. */
export function creditNoteNumber(year: number, sequence: number): string {
  return `CN-${invoiceNumber(year, sequence)}`;
}

/** Name of a credit note's PDF in the object store (the contracts' builder). */
export function creditNotePdfName(number: string): string {
  return OrderingTopology.objectStores.creditNotePdf(number);
}

/** The credit note cancelling `invoice` in full, given its number and issue time. */
export function draftCreditNote(
  invoice: InvoiceDocument,
  numbering: { year: number; sequence: number },
  issuedAt: Date,
  refund: { reason: RefundReason; refundId: string },
): CreditNoteDocument {
  return {
    orderId: invoice.orderId,
    number: creditNoteNumber(numbering.year, numbering.sequence),
    year: numbering.year,
    sequence: numbering.sequence,
    issuedAt: issuedAt.toISOString(),
    invoiceNumber: invoice.number,
    invoiceIssuedAt: invoice.issuedAt,
    customer: invoice.customer,
    billingAddress: invoice.billingAddress,
    currency: invoice.currency,
    lines: invoice.lines,
    vatRateBp: invoice.vatRateBp,
    net: invoice.net,
    vat: invoice.vat,
    total: invoice.total,
    reason: refund.reason,
    refundId: refund.refundId,
  };
}

/** What to do with a `payment.refunded`, given the order's invoice and credit note. */
export type CreditDecision = 'not_invoiced' | 'already_credited' | 'credit';

export function decideCredit(order: { invoiced: boolean; credited: boolean }): CreditDecision {
  if (order.credited) return 'already_credited';
  if (!order.invoiced) return 'not_invoiced';
  return 'credit';
}
