import type { Middleware } from '../types.ts';

/**
 * Remembers which events a consumer has handled. `seen` is asked before the handler runs; `remember`
 * is called after it succeeded. For effects in a SQL store, prefer the transactional inbox of
 * `@orderflow/sql`, which records the id in the same transaction as the state change.
 */
export interface IdempotencyStore {
  seen(consumer: string, eventId: string): Promise<boolean>;
  remember(consumer: string, eventId: string): Promise<void>;
}

/** Skips (and acks) an event whose `ce-id` this consumer already handled. Needs the decoded envelope. */
export function idempotency(store: IdempotencyStore): Middleware {
  return (next) => async (delivery) => {
    const id = delivery.envelope?.id;
    if (id === undefined) return next(delivery);
    if (await store.seen(delivery.consumer, id)) {
      delivery.logger.debug('duplicate event skipped');
      delivery.ack();
      return;
    }
    await next(delivery);
    await store.remember(delivery.consumer, id);
  };
}
