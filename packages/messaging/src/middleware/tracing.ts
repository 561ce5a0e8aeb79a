import { context, SpanKind, SpanStatusCode, trace, type Tracer, TraceFlags } from '@opentelemetry/api';
import { Header } from '../envelope.ts';
import type { Middleware } from '../types.ts';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Tracing: runs the rest of the chain in a CONSUMER span whose parent is the producer's `traceparent`,
 * so one trace spans every service a flow crosses. With no OpenTelemetry SDK registered the API is a
 * no-op and this costs next to nothing; messages published inside the handler carry the trace on.
 */
export function tracing(tracer: Tracer = trace.getTracer('@orderflow/messaging')): Middleware {
  return (next) => async (delivery) => {
    const parent = TRACEPARENT.exec(delivery.header(Header.TraceParent) ?? '');
    const parentContext = parent
      ? trace.setSpanContext(context.active(), {
          traceId: parent[1] as string,
          spanId: parent[2] as string,
          traceFlags: parseInt(parent[3] as string, 16) & TraceFlags.SAMPLED,
          isRemote: true,
        })
      : context.active();
    const span = tracer.startSpan(
      `process ${delivery.header(Header.Type) ?? delivery.subject}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.destination.name': delivery.subject,
          'messaging.consumer.group.name': delivery.consumer,
          'messaging.message.id': delivery.header(Header.Id) ?? '',
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
}
