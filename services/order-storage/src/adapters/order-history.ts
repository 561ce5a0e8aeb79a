import type { JetStreamManager, MsgRequest, NextMsgRequest, StoredMsg } from '@nats-io/jetstream';
import {
  EVENT_PRODUCERS,
  ORDER_EVENT_SOURCES,
  sourceOf,
  OrderingEvents,
  type OrderEventSource,
  type OrderingTopology,
} from '@orderflow/contracts';
import type { Aggregate, StoredCommit } from '@orderflow/eventstore';
import { decodeEnvelope, type MessageContract } from '@orderflow/messaging';
import type { OrderCommand, OrderEvent, OrderState } from '../domain/order.ts';
import type { HistoryEntry, OrderHistory, OrderHistoryRead, SkippedMessage } from '../ports/order-history.ts';

export const CONTRACTS: ReadonlyMap<string, MessageContract> = new Map(
  OrderingEvents.map((c) => [c.type, c]),
);
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
): Promise<OrderHistoryRead> {
  const { jsm, topology, aggregate } = deps;
  const filter = topology.subjects.orderHistory(orderId);
  const events: HistoryEntry[] = [];
  const skipped: SkippedMessage[] = [];
  const seen = new Set<string>();
  const add = (entry: UnnumberedEntry) => {
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
        const decoded = orderEntries(aggregate, commit, orderId);
        if (typeof decoded === 'string') skip(decoded);
        else for (const entry of decoded) add(entry);
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

type UnnumberedEntry = Omit<HistoryEntry, 'version'> & { id: string; source: string };

/**
 * The history entries of one commit of the Order aggregate, or why it is not readable (a commit
 * another source wrote on the order's subject). Throws what the codec throws on garbage.
 */
export function orderEntries(
  aggregate: Aggregate<OrderState, OrderCommand, OrderEvent>,
  commit: StoredCommit,
  orderId: string,
): UnnumberedEntry[] | string {
  const envelope = decodeEnvelope(commit.headers, commit.body);
  if (envelope.source !== aggregate.producer) {
    return `${envelope.source} is not the producer of ${commit.subject}`;
  }
  return aggregate.codec.decode(commit, orderId).map((event) => ({
    type: event.metadata.storedType,
    time: event.metadata.time,
    data: event.data,
    id: event.metadata.id,
    source: envelope.source,
    subject: orderId,
    ...(envelope.traceparent !== undefined && { traceparent: envelope.traceparent }),
  }));
}

/**
 * {@link OrderHistory} on the JetStream `ORDERING` stream, which holds every source's events: reading
 * is {@link readOrderHistory}; recording is nothing to do.
 */
export class JetStreamOrderHistory implements OrderHistory {
  constructor(private readonly deps: Parameters<typeof readOrderHistory>[0]) {}

  read(orderId: string): Promise<OrderHistoryRead> {
    return readOrderHistory(this.deps, orderId);
  }

  async record(): Promise<void> {}
}
