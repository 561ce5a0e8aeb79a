import { randomFillSync, randomUUID } from 'node:crypto';
import { InvalidArgumentError, MsgHdrsImpl, type MsgHdrs } from '@nats-io/nats-core';
import { trace } from '@opentelemetry/api';
import { DecodeError, ErrorCode } from './errors.ts';
import type { PublishOptions } from './types.ts';

/**
 * A CloudEvents 1.0 event as handled by the toolkit. On NATS the toolkit publishes it in binary mode:
 * attributes in `ce-*` headers (percent-encoded as the CloudEvents NATS binding asks), `data` as the
 * JSON body. It reads binary and structured mode (`content-type: application/cloudevents+json`, the
 * whole event as a JSON object in the body). `id` doubles as `Nats-Msg-Id`, so a retried publish is
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
  /** Structured mode names the event format here (`application/cloudevents+json`). */
  ContentType: 'content-type',
} as const;

const JSON_CONTENT_TYPE = 'application/json';
/** Media type of the CloudEvents JSON event format (structured mode). */
export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json';
const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';

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
  /** Default: `causedBy`'s id. */
  causationId?: string | undefined;
  /** The producer's span (set by a traced publish); default: the active span, else a child of `causedBy`'s trace. */
  traceparent?: string | undefined;
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
    traceparent: init.traceparent ?? currentTraceparent(init.causedBy?.traceparent),
    correlationId: init.correlationId ?? init.causedBy?.correlationId ?? id,
    causationId: 'causationId' in init ? init.causationId : init.causedBy?.id,
    data: init.data,
  };
}

/**
 * The envelope of a publish: attributes from `options.recorded` when the event was recorded earlier,
 * else decided now (correlation, causation and trace carried over from `options.causedBy`).
 */
export function publishedEnvelope<T>(
  type: string,
  source: string,
  data: T,
  options: Pick<PublishOptions, 'id' | 'about' | 'causedBy' | 'recorded'>,
  traceparent?: string,
): Envelope<T> {
  const { recorded } = options;
  return createEnvelope({
    type,
    source,
    data,
    ...(options.id !== undefined && { id: options.id }),
    ...(options.about !== undefined && { subject: options.about }),
    ...(recorded
      ? {
          time: recorded.time,
          correlationId: recorded.correlationId,
          causationId: recorded.causationId,
          traceparent: traceparent ?? recorded.traceparent,
        }
      : { causedBy: options.causedBy, traceparent }),
  });
}

const CR_OR_LF = /[\r\n]/;

/** What `MsgHdrs.set` checks and stores for a value: no CR/LF, trimmed. */
function headerValue(value: string): string[] {
  if (CR_OR_LF.test(value)) throw InvalidArgumentError.format('header', 'values cannot contain \\r or \\n');
  return [value.trim()];
}

/**
 * What the CloudEvents NATS binding (3.1.3.2) percent-encodes: space, `"`, `%` and everything outside
 * printable ASCII (U+0021–U+007E), controls included. A loop, not a regular expression: it runs for
 * every attribute of every publish.
 */
function needsEncoding(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x22 || c === 0x25) return true;
  }
  return false;
}

/**
 * A `ce-*` header value as the CloudEvents NATS binding writes it: each character that needs it as
 * `%XY` per UTF-8 byte (upper-case hex); other characters as they are. An ASCII value without
 * space, `"` or `%` (ids, types, sources, times) comes back unchanged.
 */
export function encodeHeaderValue(value: string): string {
  if (!needsEncoding(value)) return value;
  let out = '';
  for (const char of value) {
    if (!needsEncoding(char)) {
      out += char;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8'))
      out += `%${byte < 16 ? '0' : ''}${byte.toString(16).toUpperCase()}`;
  }
  return out;
}

const PERCENT_ESCAPE = /%([0-9A-Fa-f]{2})/g;

/**
 * A `ce-*` header value as the CloudEvents NATS binding reads it: a double-quoted value is unquoted
 * (backslash escapes resolved), then one round of percent-decoding; `%` not followed by two hex
 * digits stays as it is (producers that predate the binding's encoding rule). Throws
 * {@link DecodeError} when the decoded bytes are not UTF-8 (an overlong `%C0%A0` included).
 */
export function decodeHeaderValue(value: string, name = 'header'): string {
  // The common case (no `%`, not quoted) without a regular expression: it runs for every attribute.
  if (value.indexOf('%') === -1 && value.charCodeAt(0) !== 0x22) return value;
  let text = value;
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    text = text.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  if (!text.includes('%')) return text;
  const parts: Buffer[] = [];
  let last = 0;
  for (const match of text.matchAll(PERCENT_ESCAPE)) {
    parts.push(Buffer.from(text.slice(last, match.index), 'utf8'), Buffer.of(parseInt(match[1]!, 16)));
    last = match.index + 3;
  }
  parts.push(Buffer.from(text.slice(last), 'utf8'));
  try {
    return utf8.decode(Buffer.concat(parts));
  } catch (cause) {
    throw new DecodeError(ErrorCode.Decode, `${name}: percent-encoded value is not valid UTF-8`, { cause });
  }
}

/** A `ce-*` header's stored value: percent-encoded, so CR/LF cannot reach the wire. */
function ceValue(value: string): string[] {
  return [encodeHeaderValue(value)];
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

/**
 * CloudEvents binary-mode headers for `envelope`, with `Nats-Msg-Id` = `ce-id`. Attribute values are
 * percent-encoded where the NATS binding asks (space, `"`, `%`, non-ASCII, controls).
 */
export function envelopeHeaders(envelope: Envelope, msgId: string = envelope.id): MsgHdrs {
  // Filled straight into the map: `MsgHdrs.set` re-validates the (constant) name and copies every
  // key on each call, which made header building a visible share of every publish.
  const h = new EnvelopeHeaders();
  const map = h.headers;
  map.set(Header.SpecVersion, ['1.0']);
  map.set(Header.Id, ceValue(envelope.id));
  map.set(Header.Type, ceValue(envelope.type));
  map.set(Header.Source, ceValue(envelope.source));
  if (envelope.subject !== undefined) map.set(Header.Subject, ceValue(envelope.subject));
  map.set(Header.Time, ceValue(envelope.time));
  map.set(Header.DataContentType, ceValue(envelope.dataContentType));
  map.set(Header.CorrelationId, ceValue(envelope.correlationId));
  if (envelope.causationId !== undefined) map.set(Header.CausationId, ceValue(envelope.causationId));
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
 * Reads a CloudEvent from NATS headers and body, in binary or structured mode (see
 * {@link readEnvelope}). Throws {@link DecodeError} naming what is wrong.
 */
export function decodeEnvelope(headers: MsgHdrs | undefined, body: Uint8Array): Envelope {
  return readEnvelope({ header: (name) => headers?.get(name) || undefined }, body);
}

/** Where {@link readEnvelope} finds headers: a header's value, `undefined` when absent or empty. */
export interface HeaderSource {
  header(name: string): string | undefined;
}

type ContentMode = 'binary' | 'structured';

/** The media type of a `content-type` value, lower-cased, without parameters. */
function mediaType(value: string): string {
  const semicolon = value.indexOf(';');
  return (semicolon === -1 ? value : value.slice(0, semicolon)).trim().toLowerCase();
}

function contentTypeOf(source: HeaderSource): string | undefined {
  return source.header(Header.ContentType) ?? source.header('Content-Type');
}

/**
 * Structured when `content-type` says `application/cloudevents+json`, or when there is no
 * `ce-specversion` header and the body is a JSON object with `specversion` (the NATS binding 1.0.2,
 * which had no headers, sent every event so). Binary otherwise.
 */
function contentMode(source: HeaderSource, body: Uint8Array): ContentMode {
  const contentType = contentTypeOf(source);
  if (contentType !== undefined) {
    const type = mediaType(contentType);
    if (type === STRUCTURED_CONTENT_TYPE) return 'structured';
    if (type === BATCH_CONTENT_TYPE) {
      throw new DecodeError(
        ErrorCode.Decode,
        'CloudEvents batch mode is not supported; publish one event per message',
      );
    }
    if (type.startsWith('application/cloudevents')) {
      throw new DecodeError(ErrorCode.Decode, `unsupported CloudEvents event format "${contentType}"`);
    }
  }
  if (source.header(Header.SpecVersion) !== undefined || body[firstNonSpace(body)] !== 0x7b) return 'binary';
  try {
    const parsed: unknown = JSON.parse(utf8.decode(body));
    return typeof parsed === 'object' && parsed !== null && 'specversion' in parsed ? 'structured' : 'binary';
  } catch {
    return 'binary';
  }
}

function firstNonSpace(body: Uint8Array): number {
  let at = 0;
  while (
    at < body.length &&
    (body[at] === 0x20 || body[at] === 0x0a || body[at] === 0x0d || body[at] === 0x09)
  )
    at++;
  return at;
}

function isJson(contentType: string): boolean {
  return contentType.startsWith(JSON_CONTENT_TYPE);
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return bytes.length === 0 ? null : JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    throw new DecodeError(ErrorCode.Decode, `${what} is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/**
 * {@link decodeEnvelope} over any header source (a `Delivery` is one). Binary mode: attributes from
 * `ce-*` headers, percent-decoded; `data` is the JSON body. Structured mode: the body is the JSON
 * event format (`data`, or `data_base64` holding JSON). Throws {@link DecodeError} for missing
 * required attributes, a spec version other than 1.0, a non-JSON `datacontenttype` or body, the
 * batch mode and other event formats.
 */
export function readEnvelope(source: HeaderSource, body: Uint8Array): Envelope {
  return contentMode(source, body) === 'structured' ? readStructured(body) : readBinary(source, body);
}

/** A `ce-*` header's value, percent-decoded. */
function attribute(source: HeaderSource, name: string): string | undefined {
  const raw = source.header(name);
  return raw === undefined ? undefined : decodeHeaderValue(raw, name);
}

function readBinary(source: HeaderSource, body: Uint8Array): Envelope {
  const specVersion = attribute(source, Header.SpecVersion);
  const id = attribute(source, Header.Id);
  const type = attribute(source, Header.Type);
  const ceSource = attribute(source, Header.Source);
  if (!specVersion || !id || !type || !ceSource) {
    const missing = [Header.SpecVersion, Header.Id, Header.Type, Header.Source].filter(
      (h) => !source.header(h),
    );
    throw new DecodeError(ErrorCode.Decode, `not a CloudEvent: missing header(s) ${missing.join(', ')}`);
  }
  if (specVersion !== '1.0') {
    throw new DecodeError(ErrorCode.Decode, `unsupported CloudEvents specversion "${specVersion}"`);
  }
  const contentType = attribute(source, Header.DataContentType) ?? JSON_CONTENT_TYPE;
  if (!isJson(contentType)) {
    throw new DecodeError(ErrorCode.Decode, `unsupported datacontenttype "${contentType}"`);
  }
  return {
    id,
    type,
    source: ceSource,
    subject: attribute(source, Header.Subject),
    time: attribute(source, Header.Time) ?? EPOCH,
    dataContentType: contentType,
    traceparent: source.header(Header.TraceParent),
    correlationId: attribute(source, Header.CorrelationId) ?? id,
    causationId: attribute(source, Header.CausationId),
    data: parseJson(body, 'body'),
  };
}

const REQUIRED_ATTRIBUTES = ['specversion', 'id', 'type', 'source'] as const;
const STRING_ATTRIBUTES = [
  ...REQUIRED_ATTRIBUTES,
  'subject',
  'time',
  'datacontenttype',
  'traceparent',
  'correlationid',
  'causationid',
  'data_base64',
] as const;

function readStructured(body: Uint8Array): Envelope {
  const event = parseJson(body, 'structured CloudEvent');
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new DecodeError(ErrorCode.Decode, 'structured CloudEvent is not a JSON object');
  }
  const fields = event as Record<string, unknown>;
  const wrong = STRING_ATTRIBUTES.filter((name) => name in fields && typeof fields[name] !== 'string');
  if (wrong.length > 0) {
    throw new DecodeError(
      ErrorCode.Decode,
      `structured CloudEvent: attribute(s) ${wrong.join(', ')} must be strings`,
    );
  }
  const text = fields as Partial<Record<(typeof STRING_ATTRIBUTES)[number], string>>;
  const missing = REQUIRED_ATTRIBUTES.filter((name) => !text[name]);
  if (missing.length > 0) {
    throw new DecodeError(ErrorCode.Decode, `not a CloudEvent: missing attribute(s) ${missing.join(', ')}`);
  }
  const { specversion, id, type, source } = text as Record<(typeof REQUIRED_ATTRIBUTES)[number], string>;
  if (specversion !== '1.0') {
    throw new DecodeError(ErrorCode.Decode, `unsupported CloudEvents specversion "${specversion}"`);
  }
  const contentType = text.datacontenttype ?? JSON_CONTENT_TYPE;
  if (!isJson(contentType)) {
    throw new DecodeError(ErrorCode.Decode, `unsupported datacontenttype "${contentType}"`);
  }
  if ('data' in fields && text.data_base64 !== undefined) {
    throw new DecodeError(ErrorCode.Decode, 'structured CloudEvent has both data and data_base64');
  }
  const data =
    text.data_base64 !== undefined
      ? parseJson(Buffer.from(text.data_base64, 'base64'), 'data_base64')
      : (fields.data ?? null);
  return {
    id,
    type,
    source,
    subject: text.subject || undefined,
    time: text.time ?? EPOCH,
    dataContentType: contentType,
    traceparent: text.traceparent || undefined,
    correlationId: text.correlationid || id,
    causationId: text.causationid || undefined,
    data,
  };
}

/**
 * The event's `subject` (the default ordering key) without decoding the whole event: the
 * `ce-subject` header, percent-decoded; for a structured-mode event, its `subject` attribute.
 * `undefined` when there is none or the message cannot be read (decoding then reports why).
 */
export function envelopeSubject(message: HeaderSource & { readonly body: Uint8Array }): string | undefined {
  const raw = message.header(Header.Subject);
  try {
    if (raw !== undefined) return decodeHeaderValue(raw, Header.Subject);
    if (message.header(Header.SpecVersion) !== undefined) return undefined;
    const type = contentTypeOf(message);
    if (type !== undefined && mediaType(type) !== STRUCTURED_CONTENT_TYPE) return undefined;
    if (contentMode(message, message.body) !== 'structured') return undefined;
    return readStructured(message.body).subject;
  } catch {
    return undefined;
  }
}
