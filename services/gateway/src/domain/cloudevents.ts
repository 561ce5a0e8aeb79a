/** An order history entry as order-storage returns it (`order.get-history`). */
export interface HistoryEntry {
  readonly version: number;
  readonly type: string;
  readonly time: string;
  readonly data: unknown;
  readonly id?: string | undefined;
  readonly source?: string | undefined;
  readonly subject?: string | undefined;
  readonly traceparent?: string | undefined;
}

/** A CloudEvent 1.0 in structured JSON form, plus the event's position in the order's history. */
export interface CloudEventJson {
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly subject: string;
  readonly time: string;
  readonly datacontenttype: 'application/json';
  readonly data: unknown;
  /** Extension attribute: 1-based position in the order's history (stream order). */
  readonly sequence: number;
  /** Distributed tracing extension: the W3C trace context the event was published with, if traced. */
  readonly traceparent?: string;
}

/** Converts the history to CloudEvents (structured mode), keeping its order. */
export function toCloudEvents(orderId: string, entries: readonly HistoryEntry[]): CloudEventJson[] {
  return entries.map((entry) => ({
    specversion: '1.0',
    id: entry.id ?? `${orderId}:${entry.version}`,
    source: entry.source ?? 'orderflow/order-storage',
    type: entry.type,
    subject: entry.subject ?? orderId,
    time: entry.time,
    datacontenttype: 'application/json',
    data: entry.data,
    sequence: entry.version,
    ...(entry.traceparent !== undefined && { traceparent: entry.traceparent }),
  }));
}
