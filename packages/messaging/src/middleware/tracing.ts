import {
  context,
  createContextKey,
  ProxyTracer,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
  TraceFlags,
} from '@opentelemetry/api';
import { Header } from '../envelope.ts';
import type { Delivery, Middleware } from '../types.ts';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// The API's no-op provider (what a ProxyTracerProvider answers before an SDK is registered).
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();
const PROBE = ROOT_CONTEXT.setValue(createContextKey('orderflow.tracing.probe'), true);
const probeActive = (): boolean => context.active() === PROBE;

/**
 * True when a span started here could have no effect: `tracer` is the API's proxy with no SDK behind it
 * (so spans are non-recording) and no context manager is registered (so nothing inside can see the
 * span). Checked per message because an SDK may be registered at any time.
 */
function isNoop(tracer: Tracer): boolean {
  if (!(tracer instanceof ProxyTracer)) return false;
  const proxy = tracer as unknown as { _delegate?: Tracer; _provider?: { getDelegate?(): unknown } };
  if (proxy._delegate !== undefined || proxy._provider?.getDelegate?.() !== NOOP_PROVIDER) return false;
  return !context.with(PROBE, probeActive);
}

/**
 * Tracing: runs the rest of the chain in a CONSUMER span whose parent is the producer's `traceparent`,
 * so one trace spans every service a flow crosses. With no OpenTelemetry SDK registered the API is a
 * no-op and this costs next to nothing; messages published inside the handler carry the trace on.
 */
export function tracing(tracer: Tracer = trace.getTracer('@orderflow/messaging')): Middleware {
  return (next) => {
    const traced = async (delivery: Delivery): Promise<void> => {
      // The decoded envelope (decoding runs before tracing) also carries a structured-mode event's trace.
      const envelope = delivery.envelope;
      const parent = TRACEPARENT.exec(envelope?.traceparent ?? delivery.header(Header.TraceParent) ?? '');
      const parentContext = parent
        ? trace.setSpanContext(context.active(), {
            traceId: parent[1] as string,
            spanId: parent[2] as string,
            traceFlags: parseInt(parent[3] as string, 16) & TraceFlags.SAMPLED,
            isRemote: true,
          })
        : context.active();
      const span = tracer.startSpan(
        `process ${envelope?.type ?? delivery.header(Header.Type) ?? delivery.subject}`,
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            'messaging.system': 'nats',
            'messaging.destination.name': delivery.subject,
            'messaging.consumer.group.name': delivery.consumer,
            'messaging.message.id': envelope?.id ?? delivery.header(Header.Id) ?? '',
            'messaging.delivery_count': delivery.deliveryCount,
          },
        },
        parentContext,
      );
      try {
        await context.with(trace.setSpan(parentContext, span), () => next(delivery));
      } catch (error) {
        span.recordException(error as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        throw error;
      } finally {
        span.end();
      }
    };
    // No SDK and no context manager: the same outcome as a span, without allocating one, and
    // without an async wrapper (a promise and three microtask turns per message).
    return (delivery) => (isNoop(tracer) ? next(delivery) : traced(delivery));
  };
}
