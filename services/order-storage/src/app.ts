import { randomUUID } from 'node:crypto';
import {
  ContractsError,
  CreditNoteIssued,
  CustomerRegistered,
  DeliveryAssigned,
  DeliveryFailed,
  DeliveryReleased,
  DeliveryUnavailable,
  eventIdFor,
  InvoiceCreated,
  InvoiceFailed,
  ORDERING_ERROR_STATUS,
  OrderingErrorCode,
  OrderCancelled,
  OrderCancelRequested,
  OrderConfirmed,
  OrderPlaced,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentFailed,
  PaymentRefunded,
  type OrderingTopology,
  type OrderStatus,
} from '@orderflow/contracts';
import {
  AggregateStore,
  commandHandler,
  DomainError,
  InvalidAggregateIdError,
  JetStreamEventLog,
  startProjection,
  WrongExpectedVersionError,
  type CommandHandler,
  type RunningProjection,
} from '@orderflow/eventstore';
import {
  EndpointError,
  on,
  PermanentError,
  type ConsumerSpec,
  type EndpointContract,
  type Envelope,
  type MessageContract,
  type PayloadOf,
  type RetryPolicy,
  type ServiceContext,
} from '@orderflow/messaging';
import { outboxMessage, OutboxRelay, SqlOutbox, type SqlStore } from '@orderflow/sql';
import { orderAggregate } from './adapters/order-aggregate.ts';
import { ownerOf, readOrderHistory } from './adapters/order-history.ts';
import { orderSummaries, orderSummary, type OrderSummary } from './adapters/read-model.ts';
import { OrderStorageDb, type OrderFacts } from './adapters/sql-db.ts';
import { admitFact, storedFact, type ReportedFact } from './domain/facts.ts';
import { requestFingerprint } from './domain/fingerprint.ts';
import { priceOrder, statusOf, type OrderCommand, type OrderEvent, type OrderState } from './domain/order.ts';

/**
 * order-storage — table of contents.
 *
 * Endpoints (request-reply, load-balanced across replicas):
 * - `customer.register` → stores the customer (unique e-mail) and, through the outbox, `customer.registered`
 * - `customer.get` → the customer as registered (404 for an unknown id)
 * - `order.place` → refused with 422 when the total is 0 (`ORDER_TOTAL_ZERO`) or above the limit; else
 *   idempotency key claimed in SQL, per customer (same customer + key + body → same order; other body →
 *   409; another customer's key is another key), then
 *   `order.placed` appended to `orders.<orderId>` (expected version 0); the reply means it is stored
 * - `order.cancel` → `order.cancel-requested{customer_request}` unless a courier is assigned (409)
 * - `order.get-history` → the order's whole history: every event of `orders|payments|invoices|deliveries
 *   .<orderId>` in stream order, each with its producer's `ce-source` (`readOrderHistory`)
 *   (`order.cancel` and `order.get-history` with `customerId`: 404 unless the order is that customer's)
 *
 * Consumes (durable, shared by replicas, per-order ordering; facts are set-once and every appended
 * event has a deterministic commit id, so redelivery and replicas change nothing):
 * - `order-storage-payments`: authorized (fact; confirm?), declined (→ `order.cancelled{payment_declined}`),
 *   refunded (→ `order.cancelled{reason}`), failed (→ `order.cancelled{payment_failed}`: nothing charged)
 * - `order-storage-invoices`: invoice.created (fact; confirm?), credit-note.issued (fact), failed
 *   (→ `order.cancel-requested{invoice_failed}`)
 * - `order-storage-deliveries`: assigned (fact; confirm?), unavailable (→ `order.cancel-requested{delivery_unavailable}`),
 *   released (fact), failed (→ `order.cancel-requested{delivery_failed}`)
 * A saga step that failed permanently thus ends the order: cancelled, after a refund of any charge.
 * `order.confirmed` is appended once payment, invoice and courier are all known.
 *
 * Read model: `order_summaries` in the SQL store, fed from `orders.*` by a projection with checkpoints
 * (an ordered consumer per replica; its dead letters are filed as `order-storage-orders`).
 */
export interface OrderStorageOptions {
  topology: OrderingTopology;
  /** The service's SQL store, migrated (`orderStorageMigrations` and `migrateInboxOutbox`). */
  store: SqlStore;
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

/** What a running order-storage offers besides its endpoints (used by tests and `main.ts`). */
export interface OrderStorage {
  readonly projection: RunningProjection;
  /** The order as the read model has it (may lag the log; see `projection.waitFor`). */
  summary(orderId: string): Promise<OrderSummary | undefined>;
  facts(orderId: string): Promise<OrderFacts | undefined>;
}

type OrderHandler = CommandHandler<OrderState, OrderCommand, OrderEvent>;

/** Answers a domain or contract failure with its typed endpoint error; anything else stays a 500. */
function toEndpointError(error: unknown): unknown {
  if (error instanceof DomainError) {
    const status = (ORDERING_ERROR_STATUS as Record<string, number>)[error.code] ?? 422;
    return new EndpointError(status, error.code, error.message, error.details);
  }
  if (error instanceof ContractsError || error instanceof InvalidAggregateIdError) {
    return new EndpointError(400, OrderingErrorCode.InvalidId, error.message);
  }
  if (error instanceof WrongExpectedVersionError) {
    return new EndpointError(409, OrderingErrorCode.Conflict, error.message);
  }
  return error;
}

/** Serves an endpoint, mapping domain failures to typed errors. */
function serve<E extends EndpointContract>(
  context: ServiceContext,
  endpoint: E,
  handler: (request: PayloadOf<E['request']>) => Promise<PayloadOf<E['response']>>,
): void {
  context.transport.serve(endpoint, async (request) => {
    try {
      return await handler(request);
    } catch (error) {
      throw toEndpointError(error);
    }
  });
}

export async function startOrderStorage(
  context: ServiceContext,
  options: OrderStorageOptions,
): Promise<OrderStorage> {
  const { topology, store } = options;
  const { transport } = context;
  const aggregate = orderAggregate(topology);
  const log = new JetStreamEventLog(transport.js, transport.jsm, transport);
  const orders = new AggregateStore(aggregate, { log });
  const handle: OrderHandler = commandHandler(orders, { ...(options.clock && { clock: options.clock }) });
  const db = new OrderStorageDb(store);
  const clock = options.clock ?? (() => new Date());

  const relay = new OutboxRelay({
    store,
    publisher: transport,
    registry: context.metrics,
    logger: context.logger,
    ...(options.relayPollIntervalMs !== undefined && { pollIntervalMs: options.relayPollIntervalMs }),
  });
  const outbox = new SqlOutbox({ onCommitted: () => relay.notify() });
  relay.start();
  context.onStop(() => relay.stop());

  const projection = await startProjection({
    log,
    sql: store,
    source: aggregate,
    projection: orderSummaries,
    consumerName: topology.consumer('order-storage', 'orders').name,
    // A foreign client's garbage on orders.* must not freeze the read model.
    onUndecodable: 'dead-letter',
    deadLetters: transport.deadLetters,
  });
  context.onStop(() => projection.stop().catch(() => undefined));
  projection.closed.catch((error: unknown) => context.logger.error({ err: error }, 'read model stopped'));

  const statusNow = async (orderId: string, state: OrderState): Promise<OrderStatus> =>
    statusOf(state, { paymentId: (await db.facts(orderId))?.paymentId ?? null });

  // ───────────── endpoints ─────────────

  serve(context, topology.endpoints.registerCustomer, async ({ email, name }) => {
    const customerId = randomUUID();
    const registeredAt = clock().toISOString();
    const stored = await store.transaction(async (tx) => {
      if (!(await db.insertCustomer(tx, { customerId, email, name, registeredAt }))) return false;
      await outbox.enqueue(
        tx,
        outboxMessage(
          CustomerRegistered,
          { customerId, email, name, registeredAt },
          {
            subject: topology.subjects.customer(customerId),
            key: customerId,
            id: eventIdFor(CustomerRegistered, customerId),
          },
        ),
      );
      return true;
    });
    if (!stored) {
      throw new EndpointError(
        409,
        OrderingErrorCode.EmailTaken,
        'a customer with this e-mail exists already',
      );
    }
    return { customerId };
  });

  serve(context, topology.endpoints.getCustomer, async ({ customerId }) => {
    const customer = await db.customer(customerId);
    if (!customer)
      throw new EndpointError(404, OrderingErrorCode.CustomerNotFound, `no customer ${customerId}`);
    return customer;
  });

  serve(context, topology.endpoints.placeOrder, async (request) => {
    const customer = await db.customer(request.customerId);
    if (!customer) {
      throw new EndpointError(404, OrderingErrorCode.CustomerNotFound, `no customer ${request.customerId}`);
    }
    // Before the key is claimed: a refused order does not use up its key.
    priceOrder(request.items);
    const hash = requestFingerprint(request, ['idempotencyKey']);
    // Keys are the customer's own: another customer's key is neither taken nor answered. The token stays
    // in this store (payment-processor asks for it at charge time), written with the claim, so it is
    // there before order.placed is.
    const claim = await db.claimIdempotencyKey(
      { customerId: customer.customerId, key: request.idempotencyKey },
      hash,
      randomUUID(),
      request.payment.token,
    );
    if (claim.requestHash !== hash) {
      throw new EndpointError(
        409,
        OrderingErrorCode.IdempotencyKeyReused,
        'this Idempotency-Key was used with a different request',
        { orderId: claim.orderId },
      );
    }
    // Also after a crash between the claim and the append: the retry finds the mapping and appends.
    const result = await handle(
      claim.orderId,
      {
        type: 'place',
        orderId: claim.orderId,
        customer: { customerId: customer.customerId, email: customer.email, name: customer.name },
        items: request.items,
        currency: request.currency,
        shippingAddress: request.shippingAddress,
      },
      { commitId: eventIdFor(OrderPlaced, claim.orderId) },
    );
    return { orderId: claim.orderId, status: await statusNow(claim.orderId, result.state) };
  });

  serve(context, topology.endpoints.cancelOrder, async ({ orderId, customerId }) => {
    const facts = await db.facts(orderId);
    const result = await handle(
      orderId,
      {
        type: 'request-cancel',
        courierAssigned: Boolean(facts?.courierId),
        ...(customerId !== undefined && { customerId }),
      },
      { commitId: eventIdFor(OrderCancelRequested, orderId) },
    );
    // Cancelled at once (nothing charged yet): a late charge finds no token.
    if (result.state.status === 'cancelled') await db.forgetToken(orderId);
    return {
      orderId,
      status: statusOf(result.state, { paymentId: facts?.paymentId ?? null }),
      accepted: true as const,
    };
  });

  serve(context, topology.endpoints.getPaymentToken, async ({ orderId }) => {
    const stored = await db.token(orderId);
    if (!stored) throw new EndpointError(404, OrderingErrorCode.OrderNotFound, `no order ${orderId}`);
    if (stored.kind === 'gone') {
      throw new EndpointError(
        410,
        OrderingErrorCode.PaymentTokenGone,
        `the payment of order ${orderId} is recorded; its token is gone`,
      );
    }
    return { orderId, token: stored.token };
  });

  serve(context, topology.endpoints.getOrderHistory, async ({ orderId, customerId }) => {
    const notFound = () => new EndpointError(404, OrderingErrorCode.OrderNotFound, `no order ${orderId}`);
    const version = await log.version(aggregate.stream, aggregate.subject(orderId));
    if (version === 0) throw notFound();
    const { events, skipped } = await readOrderHistory({ jsm: transport.jsm, topology, aggregate }, orderId);
    if (customerId !== undefined && ownerOf(events) !== customerId) throw notFound();
    if (skipped.length > 0)
      context.logger.warn({ orderId, skipped }, 'unreadable messages left out of a history');
    return { orderId, events };
  });

  // ───────────── consumers ─────────────

  /** Runs a command decided by an incoming event; a rule that says no dead-letters the event with its reason. */
  const act = async (
    orderId: string,
    command: OrderCommand,
    produces: MessageContract,
    causedBy: Envelope,
  ): Promise<void> => {
    try {
      await handle(orderId, command, { commitId: eventIdFor(produces, orderId), causedBy });
    } catch (error) {
      if (error instanceof DomainError || error instanceof InvalidAggregateIdError) {
        throw new PermanentError(`${causedBy.type} for order ${orderId}: ${error.message}`, {
          cause: error,
          code: error.code,
        });
      }
      throw error;
    }
  };

  /**
   * Records a fact another service reports about an order, if it can be true of the order (see
   * `admitFact`); one that cannot, or one about an unknown order, is dead-lettered with its code.
   */
  const record = async (orderId: string, reported: ReportedFact, event: Envelope): Promise<OrderFacts> => {
    try {
      const { state } = await orders.load(orderId);
      admitFact(state, await db.facts(orderId), reported);
    } catch (error) {
      if (error instanceof DomainError) {
        throw new PermanentError(`${event.type} for order ${orderId}: ${error.message}`, {
          cause: error,
          code: error.code,
        });
      }
      if (error instanceof ContractsError || error instanceof InvalidAggregateIdError) {
        throw new PermanentError(error.message, { cause: error, code: OrderingErrorCode.InvalidId });
      }
      throw error;
    }
    return db.recordFact(orderId, storedFact(reported));
  };

  const confirmIfComplete = async (facts: OrderFacts, event: Envelope): Promise<void> => {
    if (facts.paymentId && facts.invoiceNumber && facts.courierId) {
      await act(
        facts.orderId,
        {
          type: 'confirm',
          paymentId: facts.paymentId,
          invoiceNumber: facts.invoiceNumber,
          courierId: facts.courierId,
        },
        OrderConfirmed,
        event,
      );
    }
  };

  const tuning = {
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 8,
    ...(options.retry && { retry: options.retry }),
  };
  const consumers: ConsumerSpec[] = [
    {
      ...topology.consumers.orderStorage.payments,
      ...tuning,
      handlers: [
        on(PaymentAuthorized, async (event) => {
          const { orderId, paymentId, amount } = event.data;
          const facts = await record(orderId, { kind: 'payment', paymentId, amount }, event);
          await confirmIfComplete(facts, event);
        }),
        on(PaymentDeclined, async (event) => {
          await record(event.data.orderId, { kind: 'declined' }, event);
          await act(event.data.orderId, { type: 'record-decline' }, OrderCancelled, event);
        }),
        on(PaymentRefunded, async (event) => {
          const { orderId, refundId, paymentId, reason, amount } = event.data;
          await record(orderId, { kind: 'refund', refundId, paymentId, reason }, event);
          await act(orderId, { type: 'record-refund', reason, amount }, OrderCancelled, event);
        }),
        on(PaymentFailed, async (event) => {
          await act(event.data.orderId, { type: 'record-payment-failure' }, OrderCancelled, event);
          // Cancelled uncharged: a charge redriven from the dead letters afterwards finds no token.
          await db.forgetToken(event.data.orderId);
        }),
      ],
    },
    {
      ...topology.consumers.orderStorage.invoices,
      ...tuning,
      handlers: [
        on(InvoiceCreated, async (event) => {
          const { orderId, invoiceNumber } = event.data;
          await confirmIfComplete(await record(orderId, { kind: 'invoice', invoiceNumber }, event), event);
        }),
        on(InvoiceFailed, (event) =>
          act(
            event.data.orderId,
            { type: 'report-step-failure', reason: 'invoice_failed' },
            OrderCancelRequested,
            event,
          ),
        ),
        on(CreditNoteIssued, async (event) => {
          const { orderId, creditNoteNumber } = event.data;
          await record(orderId, { kind: 'credit-note', creditNoteNumber }, event);
        }),
      ],
    },
    {
      ...topology.consumers.orderStorage.deliveries,
      ...tuning,
      handlers: [
        on(DeliveryAssigned, async (event) => {
          const { orderId, courierId } = event.data;
          await confirmIfComplete(await record(orderId, { kind: 'courier', courierId }, event), event);
        }),
        on(DeliveryUnavailable, async (event) => {
          await record(event.data.orderId, { kind: 'delivery-unavailable' }, event);
          await act(event.data.orderId, { type: 'report-no-courier' }, OrderCancelRequested, event);
        }),
        on(DeliveryReleased, async (event) => {
          const { orderId, courierId } = event.data;
          await record(orderId, { kind: 'courier-released', courierId }, event);
        }),
        on(DeliveryFailed, (event) =>
          act(
            event.data.orderId,
            { type: 'report-step-failure', reason: 'delivery_failed' },
            OrderCancelRequested,
            event,
          ),
        ),
      ],
    },
  ];
  for (const spec of consumers) await transport.consume(spec);

  return {
    projection,
    summary: (orderId) => orderSummary(store, orderId),
    facts: (orderId) => db.facts(orderId),
  };
}
