import type { EventHandler, MessageContract } from '@orderflow/messaging';
import type { Inbox, SqlStore, SqlTransaction, TransactionalHandler } from './types.ts';

/**
 * {@link Inbox} on the `orderflow_inbox` table (see `migrateInboxOutbox`). The pair is inserted first,
 * with `ON CONFLICT DO NOTHING`: a duplicate finds the committed row and skips the work; a concurrent
 * call for the same pair waits on the uncommitted row's key and then skips (if the other committed) or
 * proceeds (if it rolled back). The work therefore never commits twice and no call fails on the key.
 */
export class SqlInbox implements Inbox {
  constructor(private readonly store: SqlStore) {}

  handleOnce(
    consumer: string,
    eventId: string,
    work: (tx: SqlTransaction) => Promise<void>,
  ): Promise<boolean> {
    return this.store.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        'INSERT INTO orderflow_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [consumer, eventId],
      );
      if (rowCount === 0) return false;
      await work(tx);
      return true;
    });
  }

  /** True when the pair was recorded (the event's effect was committed). */
  async handled(consumer: string, eventId: string): Promise<boolean> {
    const { rows } = await this.store.query(
      'SELECT 1 FROM orderflow_inbox WHERE consumer = $1 AND event_id = $2',
      [consumer, eventId],
    );
    return rows.length > 0;
  }
}

/**
 * Turns a handler that writes through `tx` into a messaging {@link EventHandler} whose effects happen
 * once per `(consumer, ce-id)`: the state change, any outbox rows and the inbox record commit together;
 * a redelivered event finds the record and is acked without running the handler. `consumer` names the
 * effect, not the process: keep it stable across deployments (usually the durable consumer's name).
 *
 * Effects outside the transaction (HTTP calls, `context.publish`) are not covered: write events to the
 * outbox instead of publishing them.
 */
export function exactlyOnce<C extends MessageContract>(
  inbox: Inbox,
  consumer: string,
  handler: TransactionalHandler<C>,
): EventHandler<C> {
  return async (event, context) => {
    const applied = await inbox.handleOnce(consumer, event.id, (tx) => handler(event, context, tx));
    if (!applied)
      context.logger.debug({ consumer, eventId: event.id }, 'duplicate event absorbed by the inbox');
  };
}
