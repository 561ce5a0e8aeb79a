import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One span as an OTLP/HTTP JSON export carries it, with its resource's `service.name`. */
export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  links: { traceId: string; spanId: string }[];
}

/** OTLP span kinds by name. */
export const OtlpSpanKind = { Internal: 1, Server: 2, Client: 3, Producer: 4, Consumer: 5 } as const;

/** A request the receiver got: its content type and size (also for encodings it does not decode). */
export interface ReceivedExport {
  contentType: string;
  body: Buffer;
}

export interface OtlpReceiver {
  /** Base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`). */
  readonly url: string;
  /** Spans decoded from `application/json` exports, in arrival order. */
  readonly spans: ReceivedSpan[];
  /** Every export request to `/v1/traces`, JSON or protobuf. */
  readonly exports: ReceivedExport[];
  close(): Promise<void>;
}

interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  attributes?: KeyValue[];
  links?: { traceId: string; spanId: string }[];
}
interface ExportTraceServiceRequest {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: { spans?: JsonSpan[] }[];
  }[];
}

const scalar = (value: AnyValue | undefined): string | number | boolean =>
  value?.stringValue ??
  (value?.intValue !== undefined ? Number(value.intValue) : undefined) ??
  value?.doubleValue ??
  value?.boolValue ??
  '';

const attributes = (list: KeyValue[] | undefined): Record<string, string | number | boolean> =>
  Object.fromEntries((list ?? []).map((kv) => [kv.key, scalar(kv.value)]));

/**
 * A real OTLP/HTTP traces receiver on a free loopback port: answers `POST /v1/traces` with 200 `{}`
 * as a collector does, decodes the `http/json` encoding (OTLP JSON: hex ids) into {@link spans},
 * and keeps every request's bytes (so `http/protobuf` exports can be checked too).
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const exports: ReceivedExport[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.concat(chunks);
      const contentType = req.headers['content-type'] ?? '';
      exports.push({ contentType, body });
      if (contentType.startsWith('application/json')) {
        let request: ExportTraceServiceRequest;
        try {
          request = JSON.parse(body.toString('utf8')) as ExportTraceServiceRequest;
        } catch {
          res.writeHead(400, { 'content-type': 'application/json' }).end('{"message":"not JSON"}');
          return;
        }
        for (const resourceSpans of request.resourceSpans ?? []) {
          const service = String(attributes(resourceSpans.resource?.attributes)['service.name'] ?? '');
          for (const scope of resourceSpans.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({
                service,
                traceId: span.traceId,
                spanId: span.spanId,
                parentSpanId: span.parentSpanId ?? '',
                name: span.name,
                kind: span.kind ?? 0,
                attributes: attributes(span.attributes),
                links: (span.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
              });
            }
          }
        }
      }
      res
        .writeHead(200, { 'content-type': contentType || 'application/json' })
        .end(contentType.startsWith('application/json') ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    exports,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
