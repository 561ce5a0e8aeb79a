import type { OrderingTopology } from '@orderflow/contracts';
import type { Envelope, PayloadOf } from '@orderflow/messaging';
import type { SqlExecutor } from '@orderflow/sql';

/** One entry of the `order.get-history` reply. */
export type HistoryEntry = PayloadOf<
  OrderingTopology['endpoints']['getOrderHistory']['response']
>['events'][number];

/** A stored message of the order's subjects that is not a readable event of its source. */
export interface SkippedMessage {
  readonly subject: string;
  readonly sequence: number;
  readonly reason: string;
}

/** What {@link OrderHistoryReader.read} finds. */
export interface OrderHistoryRead {
  /** Entries numbered `version` 1..n, oldest first. */
  readonly events: HistoryEntry[];
  /** Unreadable messages left out (logged by the caller). */
  readonly skipped: SkippedMessage[];
}

/**
 * Reads one order's whole history: every event about it from every order source (`orders`,
 * `payments`, `invoices`, `deliveries`), each with the `ce-source` of the service that produced it
 * and its `ce-type` as stored. Contract: the order's own events in log order (a commit of several
 * events gives several entries); each event of another source after the event it reacts to; an
 * event stored twice under one `ce-id` and `ce-source` appears once; an unknown order has none.
 */
export interface OrderHistoryReader {
  read(orderId: string): Promise<OrderHistoryRead>;
}

/**
 * Keeps what another service reported about an order, for a reader that cannot read the broker's
 * log of it. Called by order-storage's consumers with every payment, invoice and delivery event of an
 * order, in the transaction that records the fact the event establishes (or on its own for an event
 * that establishes none), so the history and the facts commit together. Idempotent per
 * (`ce-source`, `ce-id`): a redelivery records nothing new.
 */
export interface OrderHistoryRecorder {
  record(tx: SqlExecutor, orderId: string, event: Envelope): Promise<void>;
}

/** The `order.get-history` port of order-storage (JetStream or SQL, chosen by `main.ts`). */
export interface OrderHistory extends OrderHistoryReader, OrderHistoryRecorder {}

/** The customer an order belongs to: the one its `order.placed` names (undefined when the history has none). */
export function ownerOf(events: readonly HistoryEntry[]): string | undefined {
  const placed = events.find((entry) => entry.type.startsWith('order.placed.'));
  const data = placed?.data as { readonly customer?: { readonly customerId?: unknown } } | undefined;
  return typeof data?.customer?.customerId === 'string' ? data.customer.customerId : undefined;
}
