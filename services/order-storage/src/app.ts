import type { OrderingTopology } from '@orderflow/contracts';
import {
  AggregateStore,
  commandHandler,
  startProjection,
  type EventLog,
  type RunningProjection,
} from '@orderflow/eventstore';
import type { RetryPolicy, Transport } from '@orderflow/messaging';
import { OutboxRelay, SqlOutbox, type SqlStore } from '@orderflow/sql';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { orderAggregate } from './adapters/order-aggregate.ts';
import { orderSummaries, orderSummary, type OrderSummary } from './adapters/read-model.ts';
import { OrderStorageDb, type OrderFacts } from './adapters/sql-db.ts';
import { orderStorageConsumers } from './application/consumers.ts';
import type { OrderStorageDeps } from './application/deps.ts';
import { serveEndpoints } from './application/endpoints.ts';
import { sagaRules } from './application/saga.ts';
import type { OrderHistory } from './ports/order-history.ts';

/**
 * order-storage — table of contents.
 *
 * Endpoints (`application/endpoints.ts`; request-reply, load-balanced across replicas):
 * - `customer.register` → stores the customer (unique e-mail) and, through the outbox, `customer.registered`
 * - `customer.get` → the customer as registered (404 for an unknown id)
 * - `order.place` → refused with 422 when the total is 0 (`ORDER_TOTAL_ZERO`) or above the limit; else
 *   idempotency key claimed in SQL, per customer (same customer + key + body → same order; other body →
 *   409; another customer's key is another key), then
 *   `order.placed` appended to `orders.<orderId>` (expected version 0); the reply means it is stored
 * - `order.cancel` → `order.cancel-requested{customer_request}` unless a courier is assigned (409)
 * - `order.get-payment-token` → the token from SQL only (410 once the payment outcome is recorded)
 * - `order.get-history` → the order's whole history across `orders|payments|invoices|deliveries`, each
 *   event with its producer's `ce-source` (the {@link OrderHistory} port)
 *   (`order.cancel` and `order.get-history` with `customerId`: 404 unless the order is that customer's)
 *
 * Consumes (`application/consumers.ts`; durable, shared by replicas, per-order ordering; facts are
 * set-once and every appended event has a deterministic commit id, so redelivery and replicas change
 * nothing):
 * - `order-storage-payments`: authorized (fact; confirm?), declined (→ `order.cancelled{payment_declined}`),
 *   refunded (→ `order.cancelled{reason}`), failed (→ `order.cancelled{payment_failed}`: nothing charged)
 * - `order-storage-invoices`: invoice.created (fact; confirm?), credit-note.issued (fact), failed
 *   (→ `order.cancel-requested{invoice_failed}`)
 * - `order-storage-deliveries`: assigned (fact; confirm?), unavailable (→ `order.cancel-requested{delivery_unavailable}`),
 *   released (fact), failed (→ `order.cancel-requested{delivery_failed}`)
 *
 * Saga rules (`application/saga.ts`): a fact is recorded (with the event, in the order's history) only
 * if it can be true of the order (`admitFact`); a saga step that failed permanently ends the order:
 * cancelled, after a refund of any charge; `order.confirmed` is appended once payment, invoice and
 * courier are all known.
 *
 * Read model: `order_summaries` in the SQL store, fed from the event log by a projection with
 * checkpoints (a subscription per replica; its dead letters are filed as `order-storage-orders`).
 *
 * Ports only: the event log, the history and the transport are given; `main.ts` picks JetStream or SQL.
 */
export interface OrderStorageOptions {
  topology: OrderingTopology;
  /** The service's SQL store, migrated (`orderStorageMigrations` and `migrateInboxOutbox`). */
  store: SqlStore;
  /**
   * The Order aggregate's log (`orders.<id>`); the read model follows it too. Events appended to it
   * must reach the bus: JetStream is the bus, a SQL log needs an `EventForwarder`.
   */
  eventLog: EventLog;
  /** Where `order.get-history` reads, and where the consumers record what others reported. */
  history: OrderHistory;
  /** Handlers at once per consumer in this replica (default 16). */
  concurrency?: number;
  /** Attempts before dead-lettering (default 8). */
  maxDeliver?: number;
  retry?: Partial<RetryPolicy>;
  /** How often the outbox relay looks for rows nobody announced (default 1000 ms). */
  relayPollIntervalMs?: number;
  /** Time of decisions (default `new Date()`). */
  clock?: () => Date;
}

/** What order-storage needs of its process (a `ServiceContext` is one). */
export interface OrderStorageContext {
  /** Endpoints, consumers, the outbox relay's publisher and the read model's dead letters. */
  readonly transport: Transport;
  readonly logger: Logger;
  readonly metrics: Registry;
  onStop(cleanup: () => Promise<void> | void): void;
}

/** What a running order-storage offers besides its endpoints (used by tests and `main.ts`). */
export interface OrderStorage {
  readonly projection: RunningProjection;
  /** The order as the read model has it (may lag the log; see `projection.waitFor`). */
  summary(orderId: string): Promise<OrderSummary | undefined>;
  facts(orderId: string): Promise<OrderFacts | undefined>;
}

export async function startOrderStorage(
  context: OrderStorageContext,
  options: OrderStorageOptions,
): Promise<OrderStorage> {
  const { transport } = context;
  const relay = startOutboxRelay(context, options);
  const deps = orderStorageDeps(context, options, new SqlOutbox({ onCommitted: () => relay.notify() }));
  const projection = await startReadModel(context, deps);
  serveEndpoints(transport, deps);
  const consumers = orderStorageConsumers(deps, sagaRules(deps), {
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 8,
    ...(options.retry && { retry: options.retry }),
  });
  for (const spec of consumers) await transport.consume(spec);
  return {
    projection,
    summary: (orderId) => orderSummary(options.store, orderId),
    facts: (orderId) => deps.db.facts(orderId),
  };
}

function orderStorageDeps(
  context: OrderStorageContext,
  options: OrderStorageOptions,
  outbox: SqlOutbox,
): OrderStorageDeps {
  const { topology, store, eventLog: log, history } = options;
  const aggregate = orderAggregate(topology);
  const orders = new AggregateStore(aggregate, { log });
  return {
    topology,
    store,
    db: new OrderStorageDb(store),
    log,
    aggregate,
    orders,
    handle: commandHandler(orders, { ...(options.clock && { clock: options.clock }) }),
    history,
    outbox,
    clock: options.clock ?? (() => new Date()),
    logger: context.logger,
  };
}

/** The outbox (`customer.registered`) goes out through the transport, row id = message id. */
function startOutboxRelay(context: OrderStorageContext, options: OrderStorageOptions): OutboxRelay {
  const relay = new OutboxRelay({
    store: options.store,
    publisher: context.transport,
    registry: context.metrics,
    logger: context.logger,
    ...(options.relayPollIntervalMs !== undefined && { pollIntervalMs: options.relayPollIntervalMs }),
  });
  relay.start();
  context.onStop(() => relay.stop());
  return relay;
}

async function startReadModel(
  context: OrderStorageContext,
  deps: OrderStorageDeps,
): Promise<RunningProjection> {
  const projection = await startProjection({
    log: deps.log,
    sql: deps.store,
    source: deps.aggregate,
    projection: orderSummaries,
    consumerName: deps.topology.consumer('order-storage', 'orders').name,
    // A foreign client's garbage on orders.* must not freeze the read model.
    onUndecodable: 'dead-letter',
    deadLetters: context.transport.deadLetters,
  });
  context.onStop(() => projection.stop().catch(() => undefined));
  projection.closed.catch((error: unknown) => context.logger.error({ err: error }, 'read model stopped'));
  return projection;
}
