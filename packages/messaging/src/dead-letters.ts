import { randomUUID } from 'node:crypto';
import { headers as natsHeaders } from '@nats-io/nats-core';
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type MsgRequest,
  type StoredMsg,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Header } from './envelope.ts';
import { ORIGINAL_SEQUENCE_HEADER, ORIGINAL_SUBJECT_HEADER } from './delivery.ts';
import { MessagingError } from './errors.ts';
import { StoreNotFoundError, StoreUnavailableError } from './ports/errors.ts';
import type { StreamDeclaration } from './topology.ts';
import type { Delivery } from './types.ts';

/**
 * Subjects and names of the dead-letter stream. One stream holds the dead letters of every consumer
 * (`deadletter.<stream>.<consumer>`) and the redrive queue of each consumer (`redrive.<stream>.<consumer>`),
 * which the consumer's runtime reads through a second durable so that a redrive reaches only the
 * consumer that failed and never rewrites the original event log.
 */
export const DeadLetterTopology = {
  stream: 'DEADLETTER',
  deadLetterSubject: (stream: string, consumer: string) => `deadletter.${stream}.${consumer}`,
  redriveSubject: (stream: string, consumer: string) => `redrive.${stream}.${consumer}`,
  redriveDurable: (stream: string, consumer: string) => `redrive-${stream}-${consumer}`,
} as const;

export function deadLetterStream(options: { replicas?: number } = {}): StreamDeclaration {
  return {
    name: DeadLetterTopology.stream,
    subjects: ['deadletter.>', 'redrive.>'],
    // A redrive or a discard deletes one letter; nothing ever purges them.
    denyDelete: false,
    denyPurge: true,
    maxAgeMs: 30 * 24 * 3_600_000,
    replicas: options.replicas ?? 1,
    description: 'Dead letters of every consumer, and their redrive queues',
  };
}

/** Headers added to a dead letter, next to the original message's own headers. */
export const DeadLetterHeader = {
  Reason: 'Orderflow-DL-Reason',
  Code: 'Orderflow-DL-Code',
  Stream: 'Orderflow-DL-Stream',
  Consumer: 'Orderflow-DL-Consumer',
  Subject: 'Orderflow-DL-Subject',
  Sequence: 'Orderflow-DL-Sequence',
  Deliveries: 'Orderflow-DL-Deliveries',
  Time: 'Orderflow-DL-Time',
} as const;

const DL_HEADER_NAMES = new Set<string>(
  [...Object.values(DeadLetterHeader), ORIGINAL_SUBJECT_HEADER, ORIGINAL_SEQUENCE_HEADER].map((h) =>
    h.toLowerCase(),
  ),
);

/** One dead letter: the original message, and why it could not be handled. */
export interface DeadLetter {
  /** Sequence in the dead-letter stream: the id used to inspect or redrive it. */
  readonly seq: number;
  readonly stream: string;
  readonly consumer: string;
  /** Subject the message was originally published on. */
  readonly subject: string;
  /** Its sequence in the original stream. */
  readonly streamSequence: number;
  readonly deliveries: number;
  readonly reason: string;
  /** Stable code of the last error (`VALIDATION_FAILED`, `DECODE_FAILED`, `UNKNOWN_TYPE`…). */
  readonly code: string;
  readonly deadLetteredAt: string;
  /** The original headers, without the dead-letter ones. */
  readonly headers: Record<string, string>;
  /** The original payload, byte for byte. */
  readonly body: Uint8Array;
}

export class DeadLetterError extends MessagingError {
  override name = 'DeadLetterError';
}

/** What a dead letter is written from: the facts of the delivery that failed. */
export type DeadLetterSource = Pick<
  Delivery,
  | 'stream'
  | 'consumer'
  | 'subject'
  | 'streamSequence'
  | 'deliveryCount'
  | 'headerEntries'
  | 'body'
  | 'redriven'
>;

/**
 * Headers that instruct the server on publish rather than describe the message: the de-duplication id
 * and the optimistic-concurrency expectations (`Nats-Expected-Last-Subject-Sequence`… as the event store
 * appends with), plus `Nats-Rollup`. Copied into a dead letter they would apply to the dead-letter
 * subject — a second dead letter of an appended event was refused "wrong last sequence" — and to its
 * redrive.
 */
function isServerDirective(name: string): boolean {
  const lower = name.toLowerCase();
  return (
    lower === Header.MsgId.toLowerCase() || lower.startsWith('nats-expected-') || lower === 'nats-rollup'
  );
}

/**
 * What identifies a dead letter for de-duplication: the delivery's (stream, consumer, position), its
 * position being the stream sequence or, on a broker without sequences (RabbitMQ: 0), the message's
 * CloudEvents id. Unique per write for a message back from a redrive (which may die again, each time a
 * letter of its own) and for one with neither.
 */
export function deadLetterKey(delivery: DeadLetterSource): string {
  const position =
    delivery.streamSequence > 0
      ? String(delivery.streamSequence)
      : delivery.headerEntries().find(([name]) => name.toLowerCase() === Header.Id)?.[1];
  const attempt = delivery.redriven || position === undefined ? `r:${randomUUID()}` : 'o';
  return `dl:${delivery.stream}:${delivery.consumer}:${position ?? '-'}:${attempt}`;
}

/** Writes a dead letter to the JetStream dead-letter stream; see `DeadLetterStore.write` for repeats. */
export async function writeDeadLetter(
  js: JetStreamClient,
  delivery: DeadLetterSource,
  error: unknown,
): Promise<void> {
  const h = natsHeaders();
  for (const [name, value] of delivery.headerEntries()) {
    if (isServerDirective(name) || DL_HEADER_NAMES.has(name.toLowerCase())) continue;
    h.append(name, value);
  }
  const reason = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown })?.code;
  h.set(DeadLetterHeader.Reason, reason.replace(/[\r\n]+/g, ' ').slice(0, 2_000));
  h.set(DeadLetterHeader.Code, typeof code === 'string' ? code : 'HANDLER_FAILED');
  h.set(DeadLetterHeader.Stream, delivery.stream);
  h.set(DeadLetterHeader.Consumer, delivery.consumer);
  h.set(DeadLetterHeader.Subject, delivery.subject);
  h.set(DeadLetterHeader.Sequence, String(delivery.streamSequence));
  h.set(DeadLetterHeader.Deliveries, String(delivery.deliveryCount));
  h.set(DeadLetterHeader.Time, new Date().toISOString());
  await js.publish(DeadLetterTopology.deadLetterSubject(delivery.stream, delivery.consumer), delivery.body, {
    headers: h,
    msgID: deadLetterKey(delivery),
    timeout: 10_000,
  });
}

function toDeadLetter(stored: StoredMsg): DeadLetter {
  const headers: Record<string, string> = {};
  const get = (name: string) => stored.header?.get(name) ?? '';
  if (stored.header) {
    for (const name of stored.header.keys()) {
      if (!DL_HEADER_NAMES.has(name.toLowerCase())) headers[name] = stored.header.get(name);
    }
  }
  return {
    seq: stored.seq,
    stream: get(DeadLetterHeader.Stream),
    consumer: get(DeadLetterHeader.Consumer),
    subject: get(DeadLetterHeader.Subject),
    streamSequence: Number(get(DeadLetterHeader.Sequence)),
    deliveries: Number(get(DeadLetterHeader.Deliveries)),
    reason: get(DeadLetterHeader.Reason),
    code: get(DeadLetterHeader.Code),
    deadLetteredAt: get(DeadLetterHeader.Time),
    headers,
    body: stored.data,
  };
}

/**
 * The dead-letter store port: lists, inspects, redrives and discards the dead letters of every
 * consumer. A redrive reaches only the consumer that failed the message. Implemented on JetStream
 * ({@link DeadLetters}), on RabbitMQ (`RabbitDeadLetters`) and in memory.
 */
export interface DeadLetterStore {
  /**
   * Files a message that cannot be handled, with the failure as its reason and code. Writing the same
   * delivery's letter again (`deadLetterKey`: stream, consumer and sequence, or event id on RabbitMQ) — a redelivery after the `onDeadLetter` hook failed, or after a
   * crash between the write and the ack — keeps one letter: on JetStream within the dead-letter
   * stream's duplicate window (2 min), on RabbitMQ within the writing process, in memory always. A
   * message that came back through a redrive is a new attempt: its letters are not de-duplicated.
   */
  write(delivery: DeadLetterSource, error: unknown): Promise<void>;
  /** Dead letters in arrival order, optionally of one stream/consumer. */
  list(filter?: { stream?: string; consumer?: string; limit?: number }): Promise<DeadLetter[]>;
  /** One dead letter by its `seq`, or `undefined`. */
  get(seq: number): Promise<DeadLetter | undefined>;
  /**
   * Sends a dead letter back to the consumer that failed it (and to no other), with its original
   * payload and headers, then removes it. Throws {@link DeadLetterError} `DEAD_LETTER_NOT_FOUND`.
   */
  redrive(seq: number): Promise<void>;
  /** Redrives every dead letter matching the filter; returns how many. */
  redriveAll(filter?: { stream?: string; consumer?: string }): Promise<number>;
  /** Deletes a dead letter for good. */
  discard(seq: number): Promise<void>;
}

/** {@link DeadLetterStore} on the JetStream dead-letter stream. */
export class DeadLetters implements DeadLetterStore {
  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  write(delivery: DeadLetterSource, error: unknown): Promise<void> {
    return writeDeadLetter(this.js, delivery, error);
  }

  /** Dead letters in arrival order, optionally of one stream/consumer. */
  async list(filter: { stream?: string; consumer?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    const subject = DeadLetterTopology.deadLetterSubject(filter.stream ?? '*', filter.consumer ?? '*');
    const limit = filter.limit ?? 1_000;
    const info = await this.#streamInfo(subject);
    if (!info || info.state.messages === 0) return [];
    const letters: DeadLetter[] = [];
    // Walk the stream with direct "next message for subject" lookups: no consumer to create or clean up.
    let seq = info.state.first_seq;
    while (letters.length < limit && seq <= info.state.last_seq) {
      // nats-server ≥ 2.9 answers `next_by_subj` on the regular (non-direct) get as well. `null`: no
      // more letters; a failure (the server unreachable) rejects rather than cut the list short.
      const query = { next_by_subj: subject, seq } as unknown as MsgRequest;
      const stored = await this.#getMessage(query);
      if (!stored) break;
      letters.push(toDeadLetter(stored));
      seq = stored.seq + 1;
    }
    return letters;
  }

  /** One dead letter by its sequence, or `undefined` (none, or no dead-letter stream yet). An outage rejects. */
  async get(seq: number): Promise<DeadLetter | undefined> {
    try {
      const stored = await this.#getMessage({ seq });
      return stored?.subject.startsWith('deadletter.') ? toDeadLetter(stored) : undefined;
    } catch (error) {
      if (error instanceof StoreNotFoundError) return undefined;
      throw error;
    }
  }

  /** The stream's state for `subject`; `undefined` before the stream exists; an outage is `StoreUnavailableError`. */
  async #streamInfo(subject: string): Promise<StreamInfo | undefined> {
    try {
      return await this.jsm.streams.info(DeadLetterTopology.stream, { subjects_filter: subject });
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
        return undefined;
      throw new StoreUnavailableError(DeadLetterTopology.stream, undefined, { cause: error });
    }
  }

  /** `null` when the stream has no such message; `StoreNotFoundError` without the stream; else `StoreUnavailableError`. */
  async #getMessage(query: MsgRequest): Promise<StoredMsg | null> {
    try {
      return await this.jsm.streams.getMessage(DeadLetterTopology.stream, query);
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) {
        throw new StoreNotFoundError(DeadLetterTopology.stream, undefined, { cause: error });
      }
      throw new StoreUnavailableError(DeadLetterTopology.stream, undefined, { cause: error });
    }
  }

  /**
   * Sends a dead letter back to the consumer that failed it (and to no other), with its original
   * payload and headers, then removes it from the dead letters. The consumer handles it with a fresh
   * delivery count; its idempotency keeps a repeated redrive harmless.
   */
  async redrive(seq: number): Promise<void> {
    const letter = await this.get(seq);
    if (!letter) throw new DeadLetterError('DEAD_LETTER_NOT_FOUND', `no dead letter with sequence ${seq}`);
    const h = natsHeaders();
    for (const [name, value] of Object.entries(letter.headers)) h.set(name, value);
    h.set(ORIGINAL_SUBJECT_HEADER, letter.subject);
    h.set(ORIGINAL_SEQUENCE_HEADER, String(letter.streamSequence));
    await this.js.publish(DeadLetterTopology.redriveSubject(letter.stream, letter.consumer), letter.body, {
      headers: h,
      msgID: `redrive:${seq}`,
    });
    await this.discard(seq);
  }

  /** Redrives every dead letter matching the filter; returns how many. */
  async redriveAll(filter: { stream?: string; consumer?: string } = {}): Promise<number> {
    const letters = await this.list(filter);
    for (const letter of letters) await this.redrive(letter.seq);
    return letters.length;
  }

  /** Deletes a dead letter for good. */
  async discard(seq: number): Promise<void> {
    await this.jsm.streams.deleteMessage(DeadLetterTopology.stream, seq, false);
  }
}
