import { sourceOf, type OrderingTopology } from '@orderflow/contracts';
import { EventForwarder, SqlEventLog } from '@orderflow/eventstore';
import type { EventPublisher } from '@orderflow/messaging';
import type { SqlStore } from '@orderflow/sql';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { OrderHistory } from '../ports/order-history.ts';
import { orderAggregate } from './order-aggregate.ts';
import { SqlOrderHistory } from './sql-order-history.ts';

/** Name of order-storage's forwarder, and of its checkpoint. */
export const ORDER_FORWARDER = 'order-storage-orders';

/**
 * order-storage's ports without a broker-side event log: the Order aggregate's log is a
 * `SqlEventLog` in the service's own store (migrated here), the history is read from it and from the
 * `order_history` table, and an {@link EventForwarder} (not started) brings each commit to the bus
 * through `publisher` so the other services still see `order.placed` and the rest. Start the
 * forwarder before order-storage and stop it after.
 */
export async function sqlPorts(
  store: SqlStore,
  publisher: EventPublisher,
  topology: OrderingTopology,
  options: { registry?: Registry; logger?: Logger; pollIntervalMs?: number } = {},
): Promise<{ eventLog: SqlEventLog; history: OrderHistory; forwarder: EventForwarder }> {
  const aggregate = orderAggregate(topology);
  const eventLog = await SqlEventLog.create(store, {
    source: sourceOf('order-storage'),
    ...(options.pollIntervalMs !== undefined && { pollIntervalMs: options.pollIntervalMs }),
  });
  const forwarder = new EventForwarder({
    name: ORDER_FORWARDER,
    log: eventLog,
    stream: aggregate.stream,
    subjects: aggregate.subjects,
    publisher,
    checkpoints: store,
    ...(options.registry && { registry: options.registry }),
    ...(options.logger && { logger: options.logger }),
  });
  return { eventLog, history: new SqlOrderHistory({ store, log: eventLog, aggregate }), forwarder };
}
