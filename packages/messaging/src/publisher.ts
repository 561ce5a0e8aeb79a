import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import {
  NoRespondersError,
  TimeoutError as NatsTimeoutError,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
} from '@nats-io/nats-core';
import { randomUUID } from 'node:crypto';
import type { Tracer } from '@opentelemetry/api';
import type { MessageContract, PayloadOf } from './contract.ts';
import {
  encodeData,
  envelopeHeaders,
  Header,
  publishedEnvelope,
  utf8Bytes,
  type Envelope,
} from './envelope.ts';
import { ConcurrencyError, PublishError } from './errors.ts';
import { ReplyInbox, type PendingReply, type ReplyHandlers } from './rpc.ts';
import { messagingTracer, sendInSpan, tracingOff } from './trace-context.ts';
import type { BatchItem, EventPublisher, PublishOptions, PublishReceipt } from './types.ts';

export interface JetStreamPublisherOptions {
  /** `ce-source` of every event (e.g. `orderflow/order-storage`). */
  source: string;
  /** Attempts per publish when the ack does not come (default 4); safe thanks to `Nats-Msg-Id`. */
  attempts?: number;
  /** Per-attempt ack timeout (default 5000 ms). */
  timeoutMs?: number;
  /** Called after a payload was stored (metrics, tests). */
  onPublished?: (contract: MessageContract, receipt: PublishReceipt) => void;
  /** Tracer of the PRODUCER spans (`send <type>`), one per publish (default: the toolkit's). */
  tracer?: Tracer;
}

const WRONG_LAST_SEQUENCE = 10071;

function isRetryable(error: unknown): boolean {
  // A JetStream API error is the server's final word (wrong sequence, no such stream); anything else
  // (timeout, no responders while the stream leader moves, connection lost) may succeed on retry.
  return !(error instanceof JetStreamApiError);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const decoder = new TextDecoder();

interface PendingAck extends PendingReply {
  resolve: (ack: PubAck) => void;
  reject: (error: Error) => void;
  subject: string;
}

/** The stream's answer to a publish, read as `JetStreamClient.publish` reads it (same errors). */
const ackHandlers: ReplyHandlers<PendingAck> = {
  reply(pending, msg: Msg) {
    if (msg.headers?.code === 503) {
      // No stream captures the subject (or JetStream is off): as js.publish reports it; retryable.
      return pending.reject(
        new JetStreamError('jetstream is not enabled', { cause: new NoRespondersError(pending.subject) }),
      );
    }
    let ack: Partial<PubAck> & { error?: ConstructorParameters<typeof JetStreamApiError>[0] };
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
    } catch (error) {
      return pending.reject(error as Error);
    }
    if (ack.error) return pending.reject(new JetStreamApiError(ack.error));
    if (!ack.stream) return pending.reject(new JetStreamError('invalid ack response'));
    pending.resolve({ stream: ack.stream, seq: ack.seq ?? 0, duplicate: ack.duplicate ?? false });
  },
  timeout(pending) {
    pending.reject(new NatsTimeoutError());
  },
  closed(pending) {
    pending.reject(new JetStreamError('connection closed before the stream acknowledged'));
  },
  failed(pending, error) {
    pending.reject(error);
  },
};

/**
 * Whether the message a duplicate ack points at is this event's own earlier copy: same subject,
 * `ce-source` and `ce-id`. Anything else means another publisher took the message id first (the
 * duplicate window is per stream, not per subject or producer), and the event was not stored.
 */
export async function isOwnCopy(
  jsm: JetStreamManager,
  ack: Pick<PubAck, 'stream' | 'seq'>,
  subject: string,
  envelope: Pick<Envelope, 'id' | 'source'>,
): Promise<boolean> {
  let stored;
  try {
    stored = await jsm.streams.getMessage(ack.stream, { seq: ack.seq });
  } catch (error) {
    if (error instanceof JetStreamApiError && error.status === 404) return false;
    throw error;
  }
  return (
    stored !== null &&
    stored.subject === subject &&
    stored.header.get(Header.Source) === envelope.source &&
    stored.header.get(Header.Id) === envelope.id
  );
}

/**
 * The message id to store an event under when the one tried before was taken by another message
 * ({@link isOwnCopy}): after the event's own id (`attempt` 0), one namespaced by producer and subject
 * (retries of the event still de-duplicate against it), then a random one; `undefined` after that (a
 * random id cannot have been taken). The `ce-id` never changes, so consumers' idempotency still sees
 * one event.
 */
export function fallbackMsgId(
  envelope: Pick<Envelope, 'id' | 'source'>,
  subject: string,
  attempt: number,
): string | undefined {
  if (attempt === 0) return `${envelope.id}@${envelope.source}:${subject}`;
  if (attempt === 1) return `${envelope.id}~${randomUUID()}`;
  return undefined;
}

/**
 * {@link EventPublisher} on JetStream. Acks come back on one inbox subscription per publisher (see
 * `ReplyInbox`), not through `js.publish`, which creates an Error, a timer and a race per message.
 */
export class JetStreamPublisher implements EventPublisher {
  readonly #attempts: number;
  readonly #timeoutMs: number;
  readonly #nc: NatsConnection | undefined;
  readonly #tracer: Tracer;
  #inbox: ReplyInbox<PendingAck> | undefined;
  #jsm: Promise<JetStreamManager> | undefined;

  constructor(
    private readonly js: JetStreamClient,
    private readonly options: JetStreamPublisherOptions,
  ) {
    this.#attempts = options.attempts ?? 4;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#tracer = options.tracer ?? messagingTracer();
    // The client's connection (a public field of nats.js's implementation, absent from its interface);
    // with another implementation the publisher falls back to js.publish.
    const nc = (js as unknown as { nc?: NatsConnection }).nc;
    this.#nc = nc && typeof nc.publish === 'function' && typeof nc.subscribe === 'function' ? nc : undefined;
  }

  async publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: PublishOptions,
  ): Promise<PublishReceipt> {
    contract.parse(data);
    return this.#send(contract, data, options, options.timeoutMs);
  }

  #publishOnce(subject: string, payload: Uint8Array, headers: MsgHdrs, timeoutMs: number): Promise<PubAck> {
    if (!this.#nc) return this.js.publish(subject, payload, { headers, timeout: timeoutMs });
    const inbox = (this.#inbox ??= new ReplyInbox(this.#nc, ackHandlers));
    return new Promise<PubAck>((resolve, reject) => {
      inbox.send(subject, payload, headers, { resolve, reject, subject, deadline: Date.now() + timeoutMs });
    });
  }

  /** A publish in a PRODUCER span when tracing is on (see `sendInSpan`). */
  #send(
    contract: MessageContract,
    data: unknown,
    options: PublishOptions,
    timeoutMs: number | undefined,
  ): Promise<PublishReceipt> {
    const id = options.id ?? randomUUID();
    if (tracingOff(this.#tracer)) return this.#deliver(contract, data, options, timeoutMs, id, undefined);
    return sendInSpan(
      this.#tracer,
      {
        type: contract.type,
        subject: options.subject,
        messageId: id,
        about: options.about,
        causedBy: options.recorded ? options.recorded.traceparent : options.causedBy?.traceparent,
      },
      (traceparent) => this.#deliver(contract, data, options, timeoutMs, id, traceparent),
    );
  }

  async #deliver(
    contract: MessageContract,
    data: unknown,
    options: PublishOptions,
    timeoutMs: number | undefined,
    id: string,
    traceparent: string | undefined,
  ): Promise<PublishReceipt> {
    const envelope = publishedEnvelope(
      contract.type,
      this.options.source,
      data,
      { ...options, id },
      traceparent,
    );
    const headers = envelopeHeaders(envelope); // sets Nats-Msg-Id = ce-id
    const expected = options.expectedLastSubjectSequence;
    if (expected !== undefined) {
      headers.set(Header.ExpectedLastSubjectSequence, `${expected}`);
    }
    const payload = utf8Bytes(encodeData(data));
    const timeout = timeoutMs ?? this.#timeoutMs;
    let fallbacks = 0;
    let preempted = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await this.#publishOnce(options.subject, payload, headers, timeout);
        const fallback = ack.duplicate ? fallbackMsgId(envelope, options.subject, fallbacks) : undefined;
        if (fallback !== undefined && !(await this.#isOwnCopy(ack, options.subject, envelope))) {
          // Another publisher took the message id first (the duplicate window is per stream, not per
          // subject or producer): store the event under the next id, `ce-id` unchanged; the impostor
          // is the consumers' to reject (see `ConsumerSpec.producers`).
          preempted = true;
          fallbacks += 1;
          headers.set(Header.MsgId, fallback);
          attempt = 0;
          continue;
        }
        const receipt = {
          stream: ack.stream,
          seq: ack.seq,
          duplicate: ack.duplicate,
          id: envelope.id,
          ...(preempted && { preempted }),
        };
        this.options.onPublished?.(contract, receipt);
        return receipt;
      } catch (error) {
        if (
          error instanceof JetStreamApiError &&
          error.code === WRONG_LAST_SEQUENCE &&
          expected !== undefined
        ) {
          throw new ConcurrencyError(options.subject, expected, { cause: error });
        }
        if (!isRetryable(error) || attempt >= this.#attempts) {
          throw new PublishError(options.subject, (error as Error).message, { cause: error });
        }
        await pause(Math.min(100 * 2 ** attempt, 2_000));
      }
    }
  }

  async #isOwnCopy(ack: PubAck, subject: string, envelope: Envelope): Promise<boolean> {
    return isOwnCopy(await (this.#jsm ??= this.js.jetstreamManager()), ack, subject, envelope);
  }

  async publishBatch(
    items: readonly BatchItem[],
    options: { maxInFlight?: number; timeoutMs?: number } = {},
  ): Promise<PublishReceipt[]> {
    // Validate everything first: a batch with one bad payload sends nothing.
    for (const item of items) item.contract.parse(item.data);
    const maxInFlight = Math.max(1, options.maxInFlight ?? 256);
    const receipts = new Array<PublishReceipt>(items.length);
    let next = 0;
    let failure: Error | undefined;
    const lane = async (): Promise<void> => {
      while (next < items.length) {
        const index = next++;
        const item = items[index] as BatchItem;
        try {
          receipts[index] = await this.#send(
            item.contract,
            item.data,
            item.options,
            options.timeoutMs ?? item.options.timeoutMs,
          );
        } catch (error) {
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(maxInFlight, items.length) }, lane));
    if (failure !== undefined) throw failure;
    return receipts;
  }
}
