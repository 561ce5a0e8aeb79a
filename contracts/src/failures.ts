import type { Static } from '@sinclair/typebox';
import type { StepFailure } from './schemas.ts';

/**
 * The payload of a `*.failed` event (`payment.failed`, `invoice.failed`, `delivery.failed`) for the
 * order whose event `failedEvent` (its ce-type) was dead-lettered with `error`: the error's stable
 * `code` when it has one (else `FAILED`), its message cut to the schema's 500 characters.
 */
export function stepFailure(
  orderId: string,
  failedEvent: string,
  error: unknown,
  at: Date,
): Static<typeof StepFailure> {
  const code =
    typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string'
      ? (error as { code: string }).code.slice(0, 100) || 'FAILED'
      : 'FAILED';
  const reason = (error instanceof Error ? error.message : String(error)).slice(0, 500);
  return { orderId, failedEvent: failedEvent.slice(0, 200), code, reason, failedAt: at.toISOString() };
}
