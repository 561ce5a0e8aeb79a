import type { OrderingTopology } from '@orderflow/contracts';
import type { Aggregate, AggregateStore, CommandHandler, EventLog } from '@orderflow/eventstore';
import type { SqlOutbox, SqlStore } from '@orderflow/sql';
import type { Logger } from 'pino';
import type { OrderStorageDb } from '../adapters/sql-db.ts';
import type { OrderCommand, OrderEvent, OrderState } from '../domain/order.ts';
import type { OrderHistory } from '../ports/order-history.ts';

export type OrderHandler = CommandHandler<OrderState, OrderCommand, OrderEvent>;

/** What the endpoints, consumers and saga rules of order-storage work with (built by `startOrderStorage`). */
export interface OrderStorageDeps {
  readonly topology: OrderingTopology;
  readonly store: SqlStore;
  readonly db: OrderStorageDb;
  readonly log: EventLog;
  readonly aggregate: Aggregate<OrderState, OrderCommand, OrderEvent>;
  readonly orders: AggregateStore<OrderState, OrderCommand, OrderEvent>;
  /** Load, decide, append (retried on a conflict). */
  readonly handle: OrderHandler;
  readonly history: OrderHistory;
  /** Outbox for what is not the aggregate's (`customer.registered`); relayed through the transport. */
  readonly outbox: SqlOutbox;
  readonly clock: () => Date;
  readonly logger: Logger;
}
