import { randomUUID } from 'node:crypto';
import {
  ContractsError,
  CustomerRegistered,
  eventIdFor,
  ORDERING_ERROR_STATUS,
  OrderingErrorCode,
  OrderCancelRequested,
  OrderPlaced,
  type OrderStatus,
} from '@orderflow/contracts';
import { DomainError, InvalidAggregateIdError, WrongExpectedVersionError } from '@orderflow/eventstore';
import { EndpointError, type EndpointContract, type PayloadOf, type Transport } from '@orderflow/messaging';
import { outboxMessage } from '@orderflow/sql';
import { ownerOf } from '../ports/order-history.ts';
import { requestFingerprint } from '../domain/fingerprint.ts';
import { priceOrder, statusOf, type OrderState } from '../domain/order.ts';
import type { OrderStorageDeps } from './deps.ts';

type Topology = OrderStorageDeps['topology'];
type Endpoints = Topology['endpoints'];
/** The handler of one endpoint: its typed request to its typed response. */
type Handler<E extends EndpointContract> = (
  request: PayloadOf<E['request']>,
) => Promise<PayloadOf<E['response']>>;

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
function serve<E extends EndpointContract>(transport: Transport, endpoint: E, handler: Handler<E>): void {
  transport.serve(endpoint, async (request) => {
    try {
      return await handler(request);
    } catch (error) {
      throw toEndpointError(error);
    }
  });
}

/** Serves every endpoint of order-storage (see the table of contents in `app.ts`). */
export function serveEndpoints(transport: Transport, deps: OrderStorageDeps): void {
  const { endpoints } = deps.topology;
  serve(transport, endpoints.registerCustomer, registerCustomer(deps));
  serve(transport, endpoints.getCustomer, getCustomer(deps));
  serve(transport, endpoints.placeOrder, placeOrder(deps));
  serve(transport, endpoints.cancelOrder, cancelOrder(deps));
  serve(transport, endpoints.getPaymentToken, getPaymentToken(deps));
  serve(transport, endpoints.getOrderHistory, getOrderHistory(deps));
}

const notFound = (orderId: string) =>
  new EndpointError(404, OrderingErrorCode.OrderNotFound, `no order ${orderId}`);

const noCustomer = (customerId: string) =>
  new EndpointError(404, OrderingErrorCode.CustomerNotFound, `no customer ${customerId}`);

/** Stores the customer (unique e-mail: else 409) and, through the outbox, `customer.registered`. */
function registerCustomer({
  store,
  db,
  outbox,
  topology,
  clock,
}: OrderStorageDeps): Handler<Endpoints['registerCustomer']> {
  return async ({ email, name }) => {
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
  };
}

/** The customer as registered (404 for an unknown id). */
function getCustomer({ db }: OrderStorageDeps): Handler<Endpoints['getCustomer']> {
  return async ({ customerId }) => {
    const customer = await db.customer(customerId);
    if (!customer) throw noCustomer(customerId);
    return customer;
  };
}

/**
 * Prices the order (422 for a total of 0 or above the limit), claims the customer's Idempotency-Key
 * in SQL (same key + body → same order; another body → 409), appends `order.placed` with a
 * deterministic commit id; the reply means it is stored.
 */
function placeOrder(deps: OrderStorageDeps): Handler<Endpoints['placeOrder']> {
  const { db, handle } = deps;
  return async (request) => {
    const customer = await db.customer(request.customerId);
    if (!customer) throw noCustomer(request.customerId);
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
    // A key this call claimed has an order this call appended: only events reacting to that append
    // could have recorded a fact yet, so its status is the one the append left (no statement).
    const status = claim.created
      ? statusOf(result.state, { paymentId: null })
      : await statusNow(deps, claim.orderId, result.state);
    return { orderId: claim.orderId, status };
  };
}

async function statusNow({ db }: OrderStorageDeps, orderId: string, state: OrderState): Promise<OrderStatus> {
  return statusOf(state, { paymentId: (await db.facts(orderId))?.paymentId ?? null });
}

/** `order.cancel-requested{customer_request}` unless a courier is assigned (409); 404 for another customer. */
function cancelOrder({ db, handle }: OrderStorageDeps): Handler<Endpoints['cancelOrder']> {
  return async ({ orderId, customerId }) => {
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
  };
}

/** The order's payment token from SQL only (410 once the payment outcome is recorded): fast. */
function getPaymentToken({ db }: OrderStorageDeps): Handler<Endpoints['getPaymentToken']> {
  return async ({ orderId }) => {
    const stored = await db.token(orderId);
    if (!stored) throw notFound(orderId);
    if (stored.kind === 'gone') {
      throw new EndpointError(
        410,
        OrderingErrorCode.PaymentTokenGone,
        `the payment of order ${orderId} is recorded; its token is gone`,
      );
    }
    return { orderId, token: stored.token };
  };
}

/** The order's whole history from the `OrderHistory` port; with `customerId`, 404 unless it is theirs. */
function getOrderHistory({
  log,
  aggregate,
  history,
  logger,
}: OrderStorageDeps): Handler<Endpoints['getOrderHistory']> {
  return async ({ orderId, customerId }) => {
    const version = await log.version(aggregate.stream, aggregate.subject(orderId));
    if (version === 0) throw notFound(orderId);
    const { events, skipped } = await history.read(orderId);
    if (customerId !== undefined && ownerOf(events) !== customerId) throw notFound(orderId);
    if (skipped.length > 0) logger.warn({ orderId, skipped }, 'unreadable messages left out of a history');
    return { orderId, events };
  };
}
