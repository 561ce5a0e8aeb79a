import type { JetStreamManager, MsgRequest, NextMsgRequest, StoredMsg } from '@nats-io/jetstream';
import {
  EVENT_PRODUCERS,
  ORDER_EVENT_SOURCES,
  sourceOf,
  OrderingEvents,
  type OrderEventSource,
  type OrderingTopology,
} from '@orderflow/contracts';
import type { Aggregate } from '@orderflow/eventstore';
import { decodeEnvelope, type MessageContract, type PayloadOf } from '@orderflow/messaging';
import type { OrderCommand, OrderEvent, OrderState } from '../domain/order.ts';

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

const CONTRACTS: ReadonlyMap<string, MessageContract> = new Map(OrderingEvents.map((c) => [c.type, c]));
const ORDER_SOURCES: ReadonlySet<string> = new Set<OrderEventSource>(ORDER_EVENT_SOURCES);

/**
 * One order's whole history: every event of its subjects in every order source (`orders`, `payments`,
 * `invoices`, `deliveries` `.<orderId>`), in stream order, each with the `ce-source` of the service that
 * produced it. The Order aggregate's commits are decoded by its codec (a commit of several events gives
 * several entries); the other sources' events are checked against their contracts. A message that is
 * not a readable event (a foreign client's garbage, which the consumers dead-letter) is left out and
 * reported in `skipped`. An event stored twice under one `ce-id` and `ce-source` (a re-publish after the
 * stream's duplicate window) is one event (CloudEvents identity) and appears once. `version` numbers the
 * entries 1..n.
 *
 * Read with stream message gets (`next_by_subj` = `topology.subjects.orderHistory(orderId)`), one per
 * event: nats-server 2.9.10 allows one filter subject per consumer and refuses `*.<orderId>` as one on
 * the stream (its subjects are `<source>.*`), but a message get takes the wildcard.
 */
export async function readOrderHistory(
  deps: {
    readonly jsm: Pick<JetStreamManager, 'streams'>;
    readonly topology: OrderingTopology;
    readonly aggregate: Aggregate<OrderState, OrderCommand, OrderEvent>;
  },
  orderId: string,
): Promise<{ events: HistoryEntry[]; skipped: SkippedMessage[] }> {
  const { jsm, topology, aggregate } = deps;
  const filter = topology.subjects.orderHistory(orderId);
  const events: HistoryEntry[] = [];
  const skipped: SkippedMessage[] = [];
  const seen = new Set<string>();
  const add = (entry: Omit<HistoryEntry, 'version'> & { id: string; source: string }) => {
    const key = `${entry.source} ${entry.id}`;
    if (seen.has(key)) return;
    seen.add(key);
    events.push({ version: events.length + 1, ...entry });
  };
  for (let seq = 1; ;) {
    // nats.js types `next_by_subj` for direct gets only; the stream API (STREAM.MSG.GET) takes it too
    // (since nats-server 2.9), and passes the request through as it is.
    const next: NextMsgRequest = { next_by_subj: filter, seq };
    const message: StoredMsg | null = await jsm.streams.getMessage(
      topology.stream,
      next as unknown as MsgRequest,
    );
    if (!message) break;
    seq = message.seq + 1;
    const source = topology.eventSourceOf(message.subject);
    if (!source || !ORDER_SOURCES.has(source)) continue; // e.g. `customers.<same id>`: not the order's
    const skip = (reason: string) =>
      skipped.push({ subject: message.subject, sequence: message.seq, reason });
    try {
      if (source === 'orders') {
        const commit = {
          stream: topology.stream,
          subject: message.subject,
          sequence: message.seq,
          headers: message.header,
          body: message.data,
        };
        const envelope = decodeEnvelope(commit.headers, commit.body);
        if (envelope.source !== aggregate.producer) {
          skip(`${envelope.source} is not the producer of ${message.subject}`);
          continue;
        }
        for (const event of aggregate.codec.decode(commit, orderId)) {
          add({
            type: event.metadata.storedType,
            time: event.metadata.time,
            data: event.data,
            id: event.metadata.id,
            source: envelope.source,
            subject: orderId,
            ...(envelope.traceparent !== undefined && { traceparent: envelope.traceparent }),
          });
        }
        continue;
      }
      const envelope = decodeEnvelope(message.header, message.data);
      const contract = CONTRACTS.get(envelope.type);
      if (!contract) {
        skip(`unknown event type ${envelope.type}`);
        continue;
      }
      if (!contract.is(envelope.data)) {
        skip(`${envelope.type} does not match its schema`);
        continue;
      }
      const owner = EVENT_PRODUCERS[source];
      if (
        envelope.source !== sourceOf(owner.service) ||
        !owner.events.some((c) => c.type === envelope.type)
      ) {
        skip(`${envelope.source} is not the producer of ${envelope.type} on ${message.subject}`);
        continue;
      }
      add({
        type: envelope.type,
        time: envelope.time,
        data: envelope.data,
        id: envelope.id,
        source: envelope.source,
        subject: orderId,
        ...(envelope.traceparent !== undefined && { traceparent: envelope.traceparent }),
      });
    } catch (error) {
      skip((error as Error).message);
    }
  }
  return { events, skipped };
}

/** The customer an order belongs to: the one its `order.placed` names (undefined when the history has none). */
export function ownerOf(events: readonly HistoryEntry[]): string | undefined {
  const placed = events.find((entry) => entry.type.startsWith('order.placed.'));
  const data = placed?.data as { readonly customer?: { readonly customerId?: unknown } } | undefined;
  return typeof data?.customer?.customerId === 'string' ? data.customer.customerId : undefined;
}
