import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import type { ChannelModel } from 'amqplib';
import { EVENT_SOURCES, type EventSource, type OrderingTopology } from '@orderflow/contracts';
import { RabbitTopology } from '@orderflow/messaging';

/**
 * Poison messages as a foreign client would publish them, raw into the order log — the ORDERING
 * stream on NATS, the events exchange on RabbitMQ: bad JSON, a payload that breaks the schema, an
 * unknown event type, and no CloudEvents headers at all — one of each on every subject namespace.
 * Each must end as a dead letter with its reason, once per consumer that reads the subject, while
 * real traffic goes on.
 */

export type PoisonKind = 'bad-json' | 'wrong-schema' | 'unknown-type' | 'no-headers';

export interface PoisonMessage {
  readonly kind: PoisonKind;
  /**
   * Its subject (the routing key on RabbitMQ), on an id nobody else writes to: a dead letter on this
   * subject is a dead letter of this message.
   */
  readonly subject: string;
  /** Its `ce-id`, which its dead letters keep among the original headers; none for `no-headers`. */
  readonly eventId: string | undefined;
  /** Its sequence in the ORDERING stream, which its dead letters name (NATS; RabbitMQ queues have none). */
  readonly streamSequence: number | undefined;
  /**
   * The dead-letter codes it may get: a consumer's (`@orderflow/messaging`) or, for order-storage's
   * read-model projection, the event store's name for the same failure.
   */
  readonly expectedCodes: readonly string[];
}

const CODES = {
  'bad-json': ['DECODE_FAILED', 'UNDECODABLE_EVENT'],
  'wrong-schema': ['VALIDATION_FAILED', 'INVALID_EVENT'],
  'unknown-type': ['UNKNOWN_TYPE', 'UNKNOWN_EVENT_TYPE'],
  'no-headers': ['DECODE_FAILED', 'UNDECODABLE_EVENT'],
} as const satisfies Record<PoisonKind, readonly string[]>;

/** A type each namespace's producer really publishes. */
const REAL_TYPE: Record<EventSource, string> = {
  orders: 'order.placed.v2',
  payments: 'payment.authorized.v1',
  invoices: 'invoice.created.v1',
  deliveries: 'delivery.assigned.v1',
  customers: 'customer.registered.v1',
};

const POISONS: readonly {
  kind: PoisonKind;
  type: (source: EventSource) => string;
  body: string;
  headers: boolean;
}[] = [
  {
    kind: 'bad-json',
    type: (s) => REAL_TYPE[s],
    body: '{"orderId": "',
    headers: true,
  },
  {
    kind: 'wrong-schema',
    type: (s) => REAL_TYPE[s],
    body: '{"orderId":42}',
    headers: true,
  },
  {
    kind: 'unknown-type',
    type: (s) => `${s}.exploded.v1`,
    body: '{}',
    headers: true,
  },
  {
    kind: 'no-headers',
    type: (s) => REAL_TYPE[s],
    body: '{}',
    headers: false,
  },
];

/** One poison message to publish: where, what, and the CloudEvents attributes it carries (if any). */
interface PoisonPlan {
  readonly kind: PoisonKind;
  readonly subject: string;
  readonly body: Uint8Array;
  /** The `ce-*` headers; undefined for `no-headers`. */
  readonly attributes: Record<string, string> | undefined;
}

/** Every poison message of every kind on every namespace of `sources`, each on a fresh id. */
function planPoison(topology: OrderingTopology, sources: readonly EventSource[]): PoisonPlan[] {
  return sources.flatMap((source) =>
    POISONS.map((poison) => {
      // A fresh id per message: it lands on a subject (an "order") nobody else writes to.
      const id = randomUUID();
      return {
        kind: poison.kind,
        subject: topology.subjects[subjectBuilder(source)](id),
        body: new TextEncoder().encode(poison.body),
        attributes: poison.headers
          ? {
              'ce-specversion': '1.0',
              'ce-id': randomUUID(),
              'ce-type': poison.type(source),
              'ce-source': 'orderflow/chaos',
              'ce-subject': id,
              'ce-time': new Date().toISOString(),
              'ce-datacontenttype': 'application/json',
            }
          : undefined,
      };
    }),
  );
}

const published = (plan: PoisonPlan, streamSequence: number | undefined): PoisonMessage => ({
  kind: plan.kind,
  subject: plan.subject,
  eventId: plan.attributes?.['ce-id'],
  streamSequence,
  expectedCodes: CODES[plan.kind],
});

function natsHeadersOf(attributes: Record<string, string>): MsgHdrs {
  const h = natsHeaders();
  for (const [name, value] of Object.entries(attributes)) h.set(name, value);
  h.set('Nats-Msg-Id', attributes['ce-id'] ?? randomUUID());
  return h;
}

/** Publishes one poison message of every kind on every namespace (or on `sources`) into the ORDERING stream. */
export async function publishPoison(
  nc: NatsConnection,
  topology: OrderingTopology,
  sources: readonly EventSource[] = EVENT_SOURCES,
): Promise<PoisonMessage[]> {
  const js = jetstream(nc);
  const messages: PoisonMessage[] = [];
  for (const plan of planPoison(topology, sources)) {
    const ack = await js.publish(plan.subject, plan.body, {
      ...(plan.attributes ? { headers: natsHeadersOf(plan.attributes) } : { msgID: randomUUID() }),
    });
    messages.push(published(plan, ack.seq));
  }
  return messages;
}

/**
 * Publishes one poison message of every kind on every namespace (or on `sources`) into the events
 * exchange, as `RabbitTransport` publishes an event (routing key = subject, CloudEvents attributes as
 * headers, persistent), each confirmed by the broker. A refusal (the connection's user may not write
 * the subject) rejects.
 */
export async function publishPoisonRabbit(
  connection: ChannelModel,
  topology: OrderingTopology,
  sources: readonly EventSource[] = EVENT_SOURCES,
): Promise<PoisonMessage[]> {
  const channel = await connection.createConfirmChannel();
  const closed = new Promise<never>((_, reject) => {
    channel.once('error', reject);
    channel.once('close', () => reject(new Error('the broker closed the poison channel')));
  });
  closed.catch(() => undefined); // raced below; a close after the last confirm is not a failure
  try {
    const messages: PoisonMessage[] = [];
    for (const plan of planPoison(topology, sources)) {
      const confirmed = new Promise<void>((resolve, reject) =>
        channel.publish(
          RabbitTopology.events,
          plan.subject,
          Buffer.from(plan.body),
          {
            persistent: true,
            contentType: 'application/json',
            ...(plan.attributes && { headers: plan.attributes, messageId: plan.attributes['ce-id'] }),
          },
          (error: unknown) =>
            error
              ? reject(
                  error instanceof Error ? error : new Error('the broker did not confirm a poison message'),
                )
              : resolve(),
        ),
      );
      await Promise.race([confirmed, closed]);
      messages.push(published(plan, undefined));
    }
    return messages;
  } finally {
    channel.removeAllListeners('close');
    channel.on('error', () => undefined);
    await channel.close().catch(() => undefined);
  }
}

function subjectBuilder(source: EventSource): keyof OrderingTopology['subjects'] {
  switch (source) {
    case 'orders':
      return 'order';
    case 'payments':
      return 'payment';
    case 'invoices':
      return 'invoice';
    case 'deliveries':
      return 'delivery';
    case 'customers':
      return 'customer';
    default: {
      const unknown: never = source;
      throw new Error(`unknown event source ${String(unknown)}`);
    }
  }
}
