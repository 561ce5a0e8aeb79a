import { retryDelay } from '../backoff.ts';
import { isBrokerUnavailable, isPermanent, isTransient, MessagingError } from '../errors.ts';
import type { Delivery, Middleware } from '../types.ts';

/** Where dead letters go; {@link writeDeadLetter} on JetStream in production. */
export type DeadLetterWriter = (delivery: Delivery, error: unknown) => Promise<void>;

export class MaxDeliveriesExceededError extends MessagingError {
  override name = 'MaxDeliveriesExceededError';
  constructor(deliveries: number, maxDeliver: number) {
    super(
      'MAX_DELIVERIES_EXCEEDED',
      `delivered ${deliveries} times (max ${maxDeliver}) without being settled: the handler crashed or hung`,
    );
  }
}

/** Longest pause between in-place retries of an outage. */
const MAX_IN_PLACE_DELAY_MS = 5_000;

const isOutage = (error: unknown): boolean => isTransient(error) || isBrokerUnavailable(error);

/**
 * Retry and dead letter: the settlement policy.
 * - A transient failure (dependency outage: `isTransient`, or NATS itself unavailable,
 *   `isBrokerUnavailable`, as while a cluster elects a new stream leader) is retried in place with
 *   backoff of at most {@link MAX_IN_PLACE_DELAY_MS} while the runtime keeps extending the ack deadline,
 *   for up to `retry.transientRetryMs`, without using up delivery attempts: an outage of the database,
 *   the broker or a provider never dead-letters messages, and its end is noticed within seconds.
 * - Any other failure is retried by `nak(delay)` with exponential backoff and jitter (never an
 *   immediate nak) until the delivery count reaches `maxDeliver`.
 * - A permanent failure (validation, decode, {@link PermanentError}) or the last attempt writes the
 *   message to the dead-letter stream and then acks it, so the consumer moves on.
 * - A delivery beyond `maxDeliver` (the process died during earlier attempts) is dead-lettered
 *   without running the handler again.
 * If writing the dead letter fails, the message is nak'd and tried again later: it is never dropped.
 * Writing the same delivery's letter again (a retry after the hook failed, a crash before the ack)
 * leaves one letter where the store de-duplicates (`DeadLetterStore.write`).
 */
export function retryAndDeadLetter(options: {
  write: DeadLetterWriter;
  /**
   * Runs after the dead letter is written (see `ConsumerSpec.onDeadLetter`); a failure naks the
   * message for a later attempt, which writes the same letter again (the store keeps one) and runs the
   * hook again, except on the server's last delivery (`serverMaxDeliver`), which is acked.
   */
  afterDeadLetter?: (d: Delivery, error: unknown) => Promise<void>;
  /** The server's own delivery cap; a message delivered that often is never redelivered. */
  serverMaxDeliver?: number;
  onDeadLetter?: (d: Delivery, error: unknown) => void;
}): Middleware {
  // The letter before the hook: the hook's outcome (e.g. `payment.failed`) ends the order, after which
  // a redelivery may find nothing left to fail (the step is settled) and would never write the letter.
  const deadLetter = async (delivery: Delivery, error: unknown): Promise<void> => {
    try {
      await options.write(delivery, error);
    } catch (writeError) {
      delivery.logger.error({ err: writeError }, 'dead letter could not be written; will retry');
      delivery.nak(retryDelay(delivery.retry, delivery.deliveryCount));
      return;
    }
    if (options.afterDeadLetter) {
      try {
        await options.afterDeadLetter(delivery, error);
      } catch (hookError) {
        const last = delivery.deliveryCount >= (options.serverMaxDeliver ?? Number.POSITIVE_INFINITY);
        delivery.logger.error(
          { err: hookError },
          last
            ? 'dead-letter hook failed on the last delivery; the dead letter stays without its outcome'
            : 'dead-letter hook failed; will retry',
        );
        if (!last) {
          delivery.nak(retryDelay(delivery.retry, delivery.deliveryCount));
          return;
        }
      }
    }
    options.onDeadLetter?.(delivery, error);
    delivery.ack();
  };
  return (next) => async (delivery) => {
    if (delivery.deliveryCount > delivery.maxDeliver) {
      return deadLetter(
        delivery,
        new MaxDeliveriesExceededError(delivery.deliveryCount, delivery.maxDeliver),
      );
    }
    const transientUntil = Date.now() + delivery.retry.transientRetryMs;
    for (let inPlace = 1; ; inPlace++) {
      try {
        await next(delivery);
        return;
      } catch (error) {
        if (delivery.settled) throw error;
        if (isOutage(error) && Date.now() < transientUntil) {
          if (inPlace === 1)
            delivery.logger.warn({ err: error }, 'dependency unavailable; retrying in place');
          const delay = Math.min(retryDelay(delivery.retry, inPlace), MAX_IN_PLACE_DELAY_MS);
          await new Promise((resolve) => setTimeout(resolve, delay));
          if (delivery.settled) throw error; // drained meanwhile
          continue;
        }
        if (isPermanent(error) || delivery.deliveryCount >= delivery.maxDeliver) {
          await deadLetter(delivery, error);
        } else {
          delivery.nak(retryDelay(delivery.retry, delivery.deliveryCount));
        }
        throw error;
      }
    }
  };
}
