import {
  CURRENCY_MINOR_UNITS,
  MAX_AMOUNT_MINOR,
  type Currency,
  type OrderItem,
  type OrderLine,
} from './schemas.ts';

/** Computes the lines and the total of an order; integer arithmetic only. Throws a RangeError above the limit. */
export function priceItems(items: readonly OrderItem[]): { lines: OrderLine[]; total: number } {
  const lines = items.map((item) => ({ ...item, lineTotal: item.quantity * item.unitPrice }));
  const total = lines.reduce((sum, line) => sum + line.lineTotal, 0);
  if (total > MAX_AMOUNT_MINOR || lines.some((l) => l.lineTotal > MAX_AMOUNT_MINOR)) {
    throw new RangeError(`order total ${total} exceeds the limit of ${MAX_AMOUNT_MINOR} minor units`);
  }
  return { lines, total };
}

/** Formats an amount in minor units for people, e.g. `formatMoney(1999, 'EUR')` → `19.99 EUR`. */
export function formatMoney(amount: number, currency: Currency): string {
  const digits = CURRENCY_MINOR_UNITS[currency];
  const sign = amount < 0 ? '-' : '';
  const abs = Math.abs(amount);
  if (digits === 0) return `${sign}${abs} ${currency}`;
  const factor = 10 ** digits;
  const major = Math.floor(abs / factor);
  const minor = String(abs % factor).padStart(digits, '0');
  return `${sign}${major}.${minor} ${currency}`;
}
