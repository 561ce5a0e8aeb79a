import {
  CustomerRegistered,
  ignore,
  OrderingErrorCode,
  LegacyOrderingEvents,
  OrderingEvents,
  OrderStatusChanged,
  type OrderingEvent,
  type OrderingTopology,
  type OrderView,
} from '@orderflow/contracts';
import {
  EndpointError,
  on,
  type ConsumerSpec,
  type Envelope,
  type HandlerContext,
  type RetryPolicy,
  type ServiceContext,
  type Transport,
} from '@orderflow/messaging';
import type { StatusStore, VersionedRecord } from './adapters/kv-status-store.ts';
import { applyFact, factOf } from './domain/status.ts';
import { OrderStatusError, StatusErrorCode } from './errors.ts';

/**
 * order-status — table of contents.
 *
 * Consumes `order-status-all` (every event of the ORDERING stream, per-order ordering in a replica):
 * - every order, payment, invoice and delivery event → the order's record in the KV bucket
 *   (`OrderingTopology.kv.orderStatus`, key = order id) → on a change, broadcasts
 *   `order.status-changed` on core NATS (`notifications.statusChanged(orderId)`);
 * - ignores `customer.registered`.
 * Serves `order.get-status` → the `OrderView`, or 404 `ORDER_NOT_FOUND`.
 *
 * Updates are idempotent and lose nothing under replicas: a record keeps the facts of the events
 * applied, keyed by stream sequence (a sequence already there changes nothing; on RabbitMQ, without
 * sequences, by event id, folded by event time); the view is their fold in sequence order (an event
 * handled late by another replica is slotted in, not dropped); the write is a compare-and-set on the
 * KV revision, re-read and re-applied when another replica wrote first. A replica writes on the
 * record it wrote last without reading it again (one round trip per change).
 * Notifications are best effort: sent once per successful write, lost if the process dies in between.
 */
export interface OrderStatusOptions {
  topology: OrderingTopology;
  store: StatusStore;
  /** Sends the notifications (`context.transport`). */
  broadcaster: Pick<Transport, 'broadcast'>;
  concurrency?: number;
  /** Attempts before dead-lettering (default 10). */
  maxDeliver?: number;
  retry?: Partial<RetryPolicy>;
  /** Compare-and-set attempts per delivery before a retry with backoff (default 20). */
  casAttempts?: number;
  /** Orders whose last written record (and revision) the replica keeps to write on without a read (default 10 000). */
  knownRecords?: number;
}

/**
 * The records this replica last wrote, with their revisions, most recent last (bounded). A write
 * names the revision it starts from, so a record here that another writer has replaced since is
 * refused by the store, never written over; records are only added, so one that says an event is
 * applied is right.
 */
class KnownRecords {
  readonly #records = new Map<string, VersionedRecord>();

  constructor(private readonly capacity: number) {}

  get(orderId: string): VersionedRecord | undefined {
    return this.#records.get(orderId);
  }

  set(orderId: string, entry: VersionedRecord): void {
    this.#records.delete(orderId); // re-inserted last: the Map's order is the recency order
    this.#records.set(orderId, entry);
    if (this.#records.size > this.capacity) this.#records.delete(this.#records.keys().next().value as string);
  }

  forget(orderId: string): void {
    this.#records.delete(orderId);
  }
}

/**
 * Applies one event to its order's record; broadcasts when the view changed. It starts from the record
 * this replica last wrote — or, for an order it has not written, from none (the first event of an
 * order creates its record) — without reading the store; a lost compare-and-set then reads the record.
 */
async function applyEvent(
  options: OrderStatusOptions,
  known: KnownRecords,
  event: Envelope,
  contractName: OrderingEvent['type'],
  context: HandlerContext,
): Promise<void> {
  const target = factOf({ type: contractName, data: event.data } as OrderingEvent);
  if (!target) return;
  const { orderId } = target;
  const applied = {
    seq: context.streamSequence,
    id: event.id,
    type: event.type,
    at: event.time,
    fact: target.fact,
  };
  const attempts = options.casAttempts ?? 20;
  let current: VersionedRecord | undefined = known.get(orderId);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const result = applyFact(orderId, current?.record, applied);
    if (!result.changed) return; // applied before: a redelivery or a replica's copy
    let revision: number | undefined;
    try {
      revision = await options.store.write(orderId, result.record, current?.revision ?? 0);
    } catch (error) {
      known.forget(orderId); // written or not: unknown
      throw error;
    }
    if (revision !== undefined) {
      known.set(orderId, { record: result.record, revision });
      const view = result.record.view;
      if (view) notify(options, view, result.previous, event);
      return;
    }
    // Another writer came first (or what this replica knew was behind): read what is there.
    context.working();
    current = await options.store.read(orderId);
  }
  throw new OrderStatusError(
    StatusErrorCode.Contended,
    `order ${target.orderId}: ${attempts} compare-and-set attempts lost; retrying later`,
  );
}

function notify(
  options: OrderStatusOptions,
  view: OrderView,
  previous: OrderView | null,
  cause: Envelope,
): void {
  options.broadcaster.broadcast(
    OrderStatusChanged,
    {
      orderId: view.orderId,
      customerId: view.customerId,
      status: view.status,
      ...(previous && { previousStatus: previous.status }),
      cause: cause.type,
      version: view.version,
      changedAt: view.updatedAt,
    },
    { subject: options.topology.notifications.statusChanged(view.orderId), causedBy: cause },
  );
}

export function orderStatusConsumer(options: OrderStatusOptions): ConsumerSpec {
  // Every stored event but the customer's, and the versions still read (`order.placed.v1`).
  const projected = [...OrderingEvents, ...LegacyOrderingEvents].filter((c) => c !== CustomerRegistered);
  const known = new KnownRecords(options.knownRecords ?? 10_000);
  return {
    ...options.topology.consumers.orderStatus.all,
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    maxDeliver: options.maxDeliver ?? 10,
    ...(options.retry && { retry: options.retry }),
    handlers: [
      ...projected.map((contract) =>
        on(contract, (event, context) => applyEvent(options, known, event, contract.name, context)),
      ),
      ...ignore(CustomerRegistered),
    ],
  };
}

/** The `order.get-status` query. */
export async function getOrderStatus(store: StatusStore, orderId: string): Promise<OrderView> {
  const view = (await store.read(orderId))?.record.view;
  if (!view) {
    throw new EndpointError(404, OrderingErrorCode.OrderNotFound, `no order ${orderId}`, { orderId });
  }
  // A view stored before the field existed has no credit note (no credit-note.issued was applied).
  return { ...view, creditNoteNumber: view.creditNoteNumber ?? null };
}

/**
 * The `order.list` query: newest placed first, filtered by status. It reads every record (a scan of
 * the bucket, bounded concurrency): meant for the operations console, not for customer traffic.
 */
export async function listOrders(
  store: StatusStore,
  request: { status?: OrderView['status']; offset?: number; limit?: number },
): Promise<{ orders: OrderView[]; total: number; offset: number; limit: number }> {
  const offset = request.offset ?? 0;
  const limit = request.limit ?? 20;
  const ids = await store.ids();
  const views: OrderView[] = [];
  for (let i = 0; i < ids.length; i += 32) {
    const batch = await Promise.all(ids.slice(i, i + 32).map((id) => store.read(id)));
    for (const entry of batch) {
      const view = entry?.record.view;
      if (view && (request.status === undefined || view.status === request.status))
        views.push({ ...view, creditNoteNumber: view.creditNoteNumber ?? null });
    }
  }
  views.sort((a, b) => b.placedAt.localeCompare(a.placedAt) || a.orderId.localeCompare(b.orderId));
  return { orders: views.slice(offset, offset + limit), total: views.length, offset, limit };
}

/** Starts the consumer and the endpoint on a running service (see `main.ts`). */
export async function startOrderStatus(context: ServiceContext, options: OrderStatusOptions): Promise<void> {
  context.transport.serve(options.topology.endpoints.getOrderStatus, ({ orderId }) =>
    getOrderStatus(options.store, orderId),
  );
  context.transport.serve(options.topology.endpoints.listOrders, (request) =>
    listOrders(options.store, request),
  );
  await context.transport.consume(orderStatusConsumer(options));
}
