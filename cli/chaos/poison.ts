import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import { EVENT_SOURCES, type EventSource, type OrderingTopology } from '@orderflow/contracts';

/**
 * Poison messages as a foreign client would publish them, straight into the ORDERING stream: bad
 * JSON, a payload that breaks the schema, an unknown event type, and no CloudEvents headers at all —
 * one of each on every subject namespace. Each must end in the dead-letter stream with its reason,
 * once per consumer that reads the subject, while real traffic goes on.
 */

export type PoisonKind = 'bad-json' | 'wrong-schema' | 'unknown-type' | 'no-headers';

export interface PoisonMessage {
  readonly kind: PoisonKind;
  readonly subject: string;
  /** Its sequence in the ORDERING stream: a dead letter names it. */
  readonly streamSequence: number;
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

function cloudEventHeaders(type: string, subjectId: string): MsgHdrs {
  const h = natsHeaders();
  const id = randomUUID();
  h.set('ce-specversion', '1.0');
  h.set('ce-id', id);
  h.set('ce-type', type);
  h.set('ce-source', 'orderflow/chaos');
  h.set('ce-subject', subjectId);
  h.set('ce-time', new Date().toISOString());
  h.set('ce-datacontenttype', 'application/json');
  h.set('Nats-Msg-Id', id);
  return h;
}

/** Publishes one poison message of every kind on every namespace (or on `sources`); returns what was stored. */
export async function publishPoison(
  nc: NatsConnection,
  topology: OrderingTopology,
  sources: readonly EventSource[] = EVENT_SOURCES,
): Promise<PoisonMessage[]> {
  const js = jetstream(nc);
  const published: PoisonMessage[] = [];
  for (const source of sources) {
    for (const poison of POISONS) {
      // A fresh id per message: it lands on a subject (an "order") nobody else writes to.
      const id = randomUUID();
      const subject = topology.subjects[subjectBuilder(source)](id);
      const ack = await js.publish(subject, new TextEncoder().encode(poison.body), {
        ...(poison.headers
          ? { headers: cloudEventHeaders(poison.type(source), id) }
          : { msgID: randomUUID() }),
      });
      published.push({
        kind: poison.kind,
        subject,
        streamSequence: ack.seq,
        expectedCodes: CODES[poison.kind],
      });
    }
  }
  return published;
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
