import { randomFillSync, randomUUID } from 'node:crypto';
import { InvalidArgumentError, MsgHdrsImpl, type MsgHdrs } from '@nats-io/nats-core';
import { trace } from '@opentelemetry/api';
import { DecodeError, ErrorCode } from './errors.ts';

/**
 * A CloudEvents 1.0 event as handled by the toolkit. On NATS it travels in binary mode: attributes in
 * `ce-*` headers, `data` as the JSON body. `id` doubles as `Nats-Msg-Id`, so a retried publish is
 * de-duplicated by the server within the stream's duplicate window.
 */
export interface Envelope<T = unknown> {
  readonly id: string;
  /** `<name>.v<version>` of the contract. */
  readonly type: string;
  /** URI-reference of the producer, e.g. `orderflow/payment-processor`. */
  readonly source: string;
  /** What the event is about, e.g. an order id. Used as the default ordering key. */
  readonly subject: string | undefined;
  /** RFC 3339 timestamp. */
  readonly time: string;
  readonly dataContentType: string;
  /** W3C trace context of the producer. */
  readonly traceparent: string | undefined;
  /** Shared by every message of one business flow (set at its first message, then carried). */
  readonly correlationId: string;
  /** `id` of the message whose handling produced this one. */
  readonly causationId: string | undefined;
  readonly data: T;
}

export const Header = {
  SpecVersion: 'ce-specversion',
  Id: 'ce-id',
  Type: 'ce-type',
  Source: 'ce-source',
  Subject: 'ce-subject',
  Time: 'ce-time',
  DataContentType: 'ce-datacontenttype',
  CorrelationId: 'ce-correlationid',
  CausationId: 'ce-causationid',
  TraceParent: 'traceparent',
  MsgId: 'Nats-Msg-Id',
  ExpectedLastSubjectSequence: 'Nats-Expected-Last-Subject-Sequence',
} as const;

const JSON_CONTENT_TYPE = 'application/json';

/** Fields a producer may set; the rest is filled in by {@link createEnvelope}. */
export interface EnvelopeInit<T> {
  type: string;
  source: string;
  data: T;
  id?: string;
  subject?: string;
  time?: string;
  /** The message being handled: correlation, causation and trace are carried from it. */
  causedBy?: Pick<Envelope, 'id' | 'correlationId' | 'traceparent'>;
  correlationId?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// Random ids come from a pool refilled 4 KiB at a time: one randomBytes() call per id costs a
// syscall-sized slice of every publish.
const pool = Buffer.allocUnsafe(4096);
let poolOffset = pool.length;
function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** W3C `traceparent` of the active span, else a child of `parent`'s trace, else a new trace. */
export function currentTraceparent(parent?: string): string {
  const active = trace.getActiveSpan()?.spanContext();
  if (active && trace.isSpanContextValid(active)) {
    return `00-${active.traceId}-${active.spanId}-0${(active.traceFlags & 1).toString(16)}`;
  }
  const spanId = randomHex(8);
  const match = parent ? TRACEPARENT.exec(parent) : null;
  if (match) return `00-${match[1]}-${spanId}-${match[3]}`;
  return `00-${randomHex(16)}-${spanId}-01`;
}

// The RFC 3339 time of the last millisecond asked for: a burst of publishes formats it once.
let lastTimeMs = NaN;
let lastTime = '';
function nowIso(): string {
  const now = Date.now();
  if (now !== lastTimeMs) {
    lastTime = new Date(now).toISOString();
    lastTimeMs = now;
  }
  return lastTime;
}

export function createEnvelope<T>(init: EnvelopeInit<T>): Envelope<T> {
  const id = init.id ?? randomUUID();
  return {
    id,
    type: init.type,
    source: init.source,
    subject: init.subject,
    time: init.time ?? nowIso(),
    dataContentType: JSON_CONTENT_TYPE,
    traceparent: currentTraceparent(init.causedBy?.traceparent),
    correlationId: init.correlationId ?? init.causedBy?.correlationId ?? id,
    causationId: init.causedBy?.id,
    data: init.data,
  };
}

const CR_OR_LF = /[\r\n]/;

/** What `MsgHdrs.set` checks and stores for a value: no CR/LF, trimmed. */
function headerValue(value: string): string[] {
  if (CR_OR_LF.test(value)) throw InvalidArgumentError.format('header', 'values cannot contain \\r or \\n');
  return [value.trim()];
}

/**
 * nats.js headers whose wire form is built in one pass and encoded with `Buffer.from` (pooled for
 * small sizes) instead of `TextEncoder.encode` (a fresh allocation): the same bytes, about half the
 * cost of `MsgHdrsImpl.encode`, which every publish pays.
 */
class EnvelopeHeaders extends MsgHdrsImpl {
  override encode(): Uint8Array {
    if (this._code !== 0 || this.headers.size === 0) return super.encode();
    let wire = 'NATS/1.0';
    for (const [name, values] of this.headers) {
      for (let i = 0; i < values.length; i++) wire += `\r\n${name}: ${values[i]}`;
    }
    return Buffer.from(`${wire}\r\n\r\n`, 'utf8');
  }
}

/** A message body for nats.js: `Buffer.from` is pooled and cheaper than the `TextEncoder` it uses for strings. */
export function utf8Bytes(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

/** CloudEvents binary-mode headers for `envelope`, with `Nats-Msg-Id` = `ce-id`. */
export function envelopeHeaders(envelope: Envelope, msgId: string = envelope.id): MsgHdrs {
  // Filled straight into the map: `MsgHdrs.set` re-validates the (constant) name and copies every
  // key on each call, which made header building a visible share of every publish.
  const h = new EnvelopeHeaders();
  const map = h.headers;
  map.set(Header.SpecVersion, ['1.0']);
  map.set(Header.Id, headerValue(envelope.id));
  map.set(Header.Type, headerValue(envelope.type));
  map.set(Header.Source, headerValue(envelope.source));
  if (envelope.subject !== undefined) map.set(Header.Subject, headerValue(envelope.subject));
  map.set(Header.Time, headerValue(envelope.time));
  map.set(Header.DataContentType, headerValue(envelope.dataContentType));
  map.set(Header.CorrelationId, headerValue(envelope.correlationId));
  if (envelope.causationId !== undefined) map.set(Header.CausationId, headerValue(envelope.causationId));
  if (envelope.traceparent !== undefined) map.set(Header.TraceParent, headerValue(envelope.traceparent));
  map.set(Header.MsgId, headerValue(msgId));
  return h;
}

export function encodeData(data: unknown): string {
  return JSON.stringify(data);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const EPOCH = new Date(0).toISOString();

/**
 * Reads a CloudEvent from NATS headers and body. Throws {@link DecodeError} naming what is wrong:
 * missing required attributes, a spec version other than 1.0, a non-JSON content type or body.
 */
export function decodeEnvelope(headers: MsgHdrs | undefined, body: Uint8Array): Envelope {
  if (!headers) throw new DecodeError(ErrorCode.Decode, 'not a CloudEvent: message has no headers');
  return readEnvelope({ header: (name) => headers.get(name) || undefined }, body);
}

/** Where {@link readEnvelope} finds headers: a header's value, `undefined` when absent or empty. */
export interface HeaderSource {
  header(name: string): string | undefined;
}

/** {@link decodeEnvelope} over any header source (a `Delivery` is one), with the same checks and errors. */
export function readEnvelope(source: HeaderSource, body: Uint8Array): Envelope {
  const specVersion = source.header(Header.SpecVersion);
  const id = source.header(Header.Id);
  const type = source.header(Header.Type);
  const ceSource = source.header(Header.Source);
  if (!specVersion || !id || !type || !ceSource) {
    const missing = [Header.SpecVersion, Header.Id, Header.Type, Header.Source].filter(
      (h) => !source.header(h),
    );
    throw new DecodeError(ErrorCode.Decode, `not a CloudEvent: missing header(s) ${missing.join(', ')}`);
  }
  if (specVersion !== '1.0') {
    throw new DecodeError(ErrorCode.Decode, `unsupported CloudEvents specversion "${specVersion}"`);
  }
  const contentType = source.header(Header.DataContentType) ?? JSON_CONTENT_TYPE;
  if (!contentType.startsWith(JSON_CONTENT_TYPE)) {
    throw new DecodeError(ErrorCode.Decode, `unsupported datacontenttype "${contentType}"`);
  }
  let data: unknown;
  try {
    data = body.length === 0 ? null : JSON.parse(utf8.decode(body));
  } catch (cause) {
    throw new DecodeError(ErrorCode.Decode, `body is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  return {
    id,
    type,
    source: ceSource,
    subject: source.header(Header.Subject),
    time: source.header(Header.Time) ?? EPOCH,
    dataContentType: contentType,
    traceparent: source.header(Header.TraceParent),
    correlationId: source.header(Header.CorrelationId) ?? id,
    causationId: source.header(Header.CausationId),
    data,
  };
}
