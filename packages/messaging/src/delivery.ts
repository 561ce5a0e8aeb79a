import type { JsMsg } from '@nats-io/jetstream';
import type { Level, Logger } from 'pino';
import type { MessageContract } from './contract.ts';
import type { Envelope } from './envelope.ts';
import type { Delivery, RetryPolicy } from './types.ts';

/** Header set on a redriven message: the subject the message was first published on. */
export const ORIGINAL_SUBJECT_HEADER = 'Orderflow-Original-Subject';
/** Header set on a redriven message: its stream sequence in the original stream. */
export const ORIGINAL_SEQUENCE_HEADER = 'Orderflow-Original-Sequence';

const utf8 = new TextDecoder();

/**
 * Reads the raw header block of a nats.js 3 message (`NATS/1.0\r\nName: value\r\n…`) into a map
 * of first values, as `MsgHdrs.get(name)` would answer. Returns `null` when the message does not
 * look like nats.js's implementation (another version): callers then use `msg.headers`.
 * Reads nats.js 3.4's private `_rdata`/`_msg.hdr` (≈15 % of consume CPU saved, docs/performance.md);
 * `nats-internals.int.test.ts` fails if the pinned version stops matching.
 */
export function parseHeaderBlock(msg: JsMsg): Map<string, string> | null {
  const inner = (msg as unknown as { msg?: { _rdata?: unknown; _msg?: { hdr?: unknown } } }).msg;
  const data = inner?._rdata;
  const length = inner?._msg?.hdr;
  if (!(data instanceof Uint8Array) || typeof length !== 'number') return null;
  const map = new Map<string, string>();
  if (length <= 0) return map;
  const block = utf8.decode(data.subarray(0, length));
  let start = block.indexOf('\r\n');
  if (start === -1) return map;
  start += 2;
  while (start < block.length) {
    let end = block.indexOf('\r\n', start);
    if (end === -1) end = block.length;
    const colon = block.indexOf(':', start);
    if (colon !== -1 && colon < end) {
      const name = block.slice(start, colon);
      if (!map.has(name)) map.set(name, block.slice(colon + 1, end).trim());
    }
    start = end + 2;
  }
  return map;
}

// Scratch space of readAckSubject (synchronous, so one of each is enough: nothing allocated per message).
const dots = new Int32Array(12);
const position = { count: 0, seq: 0 };

/**
 * Delivery count and stream sequence from a JetStream ack subject, read as nats.js `parseInfo` reads
 * them, without splitting the subject into strings and building its ten-field info object:
 * `$JS.ACK.<stream>.<consumer>.<count>.<sseq>.<dseq>.<ts>.<pending>` (9 tokens) or
 * `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<count>.<sseq>.<dseq>.<ts>.<pending>[.<random>]`.
 * Returns `false` for anything else (the caller then asks `msg.info`, which throws nats.js's error).
 */
export function readAckSubject(reply: string, into: { count: number; seq: number }): boolean {
  if (!reply.startsWith('$JS.ACK.')) return false;
  let n = 0;
  for (let at = reply.indexOf('.'); at !== -1 && n < dots.length; at = reply.indexOf('.', at + 1)) {
    dots[n++] = at;
  }
  const tokens = n + 1;
  // The index of the delivery-count token: 4 in the old 9-token form, 6 in the new one.
  const first = tokens === 9 ? 4 : tokens >= 11 && tokens <= 12 ? 6 : -1;
  if (first === -1) return false;
  const count = Number(reply.slice((dots[first - 1] as number) + 1, dots[first]));
  const seq = Number(reply.slice((dots[first] as number) + 1, dots[first + 1]));
  if (!Number.isSafeInteger(count) || !Number.isSafeInteger(seq)) return false;
  into.count = count;
  into.seq = seq;
  return true;
}

/**
 * Acks of one consumer, sent together once the microtasks running now have settled
 * (`process.nextTick`): nats.js writes to the socket at every microtask checkpoint after a publish,
 * so acks sent one by one cost a syscall each. Requests and publishes of `ReplyInbox` (`rpc.ts`) are
 * handed over at the same point, so a burst's acks and publishes share one write. An ack is still
 * sent only after its handler resolved, in the same event-loop turn; {@link AckBatch.flush} sends
 * what is queued at once (on stop).
 */
export class AckBatch {
  #queue: JsMsg[] = [];
  readonly #flush = (): void => this.flush();

  add(msg: JsMsg): void {
    if (this.#queue.length === 0) process.nextTick(this.#flush);
    this.#queue.push(msg);
  }

  flush(): void {
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    for (const msg of queue) msg.ack();
  }
}

/** A {@link Delivery} backed by a JetStream message. */
export class JetStreamDelivery implements Delivery {
  envelope: Envelope | undefined;
  contract: MessageContract | undefined;
  settled: 'ack' | 'nak' | 'term' | undefined;
  #locals: Map<string, unknown> | undefined;
  /** Created on first use: the default middleware shares nothing through it. */
  get locals(): Map<string, unknown> {
    return (this.#locals ??= new Map());
  }
  readonly subject: string;
  readonly streamSequence: number;
  readonly deliveryCount: number;
  readonly redriven: boolean;

  constructor(
    readonly msg: JsMsg,
    readonly stream: string,
    readonly consumer: string,
    private readonly baseLogger: Logger,
    readonly maxDeliver: number,
    readonly retry: RetryPolicy,
    redriven: boolean,
    private readonly acks?: AckBatch,
  ) {
    this.redriven = redriven;
    const original = redriven ? msg.headers?.get(ORIGINAL_SUBJECT_HEADER) : undefined;
    this.subject = original || msg.subject;
    // `reply` (the ack subject) is public on nats.js's JsMsg implementation but not in its interface.
    const reply = (msg as unknown as { reply?: unknown }).reply;
    if (typeof reply !== 'string' || !readAckSubject(reply, position)) {
      position.count = msg.info.deliveryCount;
      position.seq = msg.info.streamSequence;
    }
    this.deliveryCount = position.count;
    const originalSeq = redriven ? Number(msg.headers?.get(ORIGINAL_SEQUENCE_HEADER)) : NaN;
    this.streamSequence = Number.isFinite(originalSeq) && originalSeq > 0 ? originalSeq : position.seq;
  }

  #logger: Logger | undefined;
  /** Created on first use: most deliveries never log. */
  get logger(): Logger {
    return (this.#logger ??= this.baseLogger.child({
      subject: this.subject,
      seq: this.streamSequence,
      deliveryCount: this.deliveryCount,
      ...(this.envelope && {
        type: this.envelope.type,
        eventId: this.envelope.id,
        correlationId: this.envelope.correlationId,
      }),
    }));
  }

  get body(): Uint8Array {
    return this.msg.data;
  }

  /** First value of each header, by exact name; `null` when only `msg.headers` can answer. */
  #headerMap: Map<string, string> | null | undefined;

  header(name: string): string | undefined {
    // The middleware asks for a dozen headers per message; MsgHdrs decodes with per-line validation
    // and copies every key on each get(), so the header block is read once, here.
    let map = this.#headerMap;
    if (map === undefined) map = this.#headerMap = parseHeaderBlock(this.msg);
    const value = map ? map.get(name) : this.msg.headers?.get(name);
    return value ? value : undefined;
  }

  /** Whether the delivery's logger logs `level`, without creating the per-delivery child logger. */
  isLevelEnabled(level: Level): boolean {
    return (this.#logger ?? this.baseLogger).isLevelEnabled(level);
  }

  headerEntries(): [string, string][] {
    const entries: [string, string][] = [];
    const headers = this.msg.headers;
    if (!headers) return entries;
    for (const name of headers.keys()) for (const value of headers.values(name)) entries.push([name, value]);
    return entries;
  }

  working(): void {
    if (!this.settled) this.msg.working();
  }

  ack(): void {
    if (this.settled) return;
    this.settled = 'ack';
    if (this.acks) this.acks.add(this.msg);
    else this.msg.ack();
  }

  /** Delay of the last nak, so an ordered lane knows when the redelivery is due. */
  nakDelayMs = 0;

  nak(delayMs: number): void {
    if (this.settled) return;
    this.settled = 'nak';
    this.nakDelayMs = delayMs;
    this.msg.nak(Math.max(1, Math.round(delayMs)));
  }

  term(): void {
    if (this.settled) return;
    this.settled = 'term';
    this.msg.term();
  }
}
