import { randomBytes, randomUUID } from 'node:crypto';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
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

/** W3C `traceparent` of the active span, else a child of `parent`'s trace, else a new trace. */
export function currentTraceparent(parent?: string): string {
  const active = trace.getActiveSpan()?.spanContext();
  if (active && trace.isSpanContextValid(active)) {
    return `00-${active.traceId}-${active.spanId}-0${(active.traceFlags & 1).toString(16)}`;
  }
  const spanId = randomBytes(8).toString('hex');
  const match = parent ? TRACEPARENT.exec(parent) : null;
  if (match) return `00-${match[1]}-${spanId}-${match[3]}`;
  return `00-${randomBytes(16).toString('hex')}-${spanId}-01`;
}

export function createEnvelope<T>(init: EnvelopeInit<T>): Envelope<T> {
  const id = init.id ?? randomUUID();
  return {
    id,
    type: init.type,
    source: init.source,
    subject: init.subject,
    time: init.time ?? new Date().toISOString(),
    dataContentType: JSON_CONTENT_TYPE,
    traceparent: currentTraceparent(init.causedBy?.traceparent),
    correlationId: init.correlationId ?? init.causedBy?.correlationId ?? id,
    causationId: init.causedBy?.id,
    data: init.data,
  };
}

/** CloudEvents binary-mode headers for `envelope`, with `Nats-Msg-Id` = `ce-id`. */
export function envelopeHeaders(envelope: Envelope, msgId: string = envelope.id): MsgHdrs {
  const h = natsHeaders();
  h.set(Header.SpecVersion, '1.0');
  h.set(Header.Id, envelope.id);
  h.set(Header.Type, envelope.type);
  h.set(Header.Source, envelope.source);
  if (envelope.subject !== undefined) h.set(Header.Subject, envelope.subject);
  h.set(Header.Time, envelope.time);
  h.set(Header.DataContentType, envelope.dataContentType);
  h.set(Header.CorrelationId, envelope.correlationId);
  if (envelope.causationId !== undefined) h.set(Header.CausationId, envelope.causationId);
  if (envelope.traceparent !== undefined) h.set(Header.TraceParent, envelope.traceparent);
  h.set(Header.MsgId, msgId);
  return h;
}

export function encodeData(data: unknown): string {
  return JSON.stringify(data);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a CloudEvent from NATS headers and body. Throws {@link DecodeError} naming what is wrong:
 * missing required attributes, a spec version other than 1.0, a non-JSON content type or body.
 */
export function decodeEnvelope(headers: MsgHdrs | undefined, body: Uint8Array): Envelope {
  if (!headers) throw new DecodeError(ErrorCode.Decode, 'not a CloudEvent: message has no headers');
  const get = (name: string): string | undefined => {
    const value = headers.get(name);
    return value === '' ? undefined : value;
  };
  const missing = [Header.SpecVersion, Header.Id, Header.Type, Header.Source].filter((h) => !get(h));
  if (missing.length > 0) {
    throw new DecodeError(ErrorCode.Decode, `not a CloudEvent: missing header(s) ${missing.join(', ')}`);
  }
  const specVersion = get(Header.SpecVersion);
  if (specVersion !== '1.0') {
    throw new DecodeError(ErrorCode.Decode, `unsupported CloudEvents specversion "${specVersion}"`);
  }
  const contentType = get(Header.DataContentType) ?? JSON_CONTENT_TYPE;
  if (!contentType.startsWith(JSON_CONTENT_TYPE)) {
    throw new DecodeError(ErrorCode.Decode, `unsupported datacontenttype "${contentType}"`);
  }
  let data: unknown;
  try {
    data = body.length === 0 ? null : JSON.parse(utf8.decode(body));
  } catch (cause) {
    throw new DecodeError(ErrorCode.Decode, `body is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const id = get(Header.Id) as string;
  return {
    id,
    type: get(Header.Type) as string,
    source: get(Header.Source) as string,
    subject: get(Header.Subject),
    time: get(Header.Time) ?? new Date(0).toISOString(),
    dataContentType: contentType,
    traceparent: get(Header.TraceParent),
    correlationId: get(Header.CorrelationId) ?? id,
    causationId: get(Header.CausationId),
    data,
  };
}
