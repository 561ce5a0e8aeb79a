import { context, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { Header } from '../envelope.ts';
import { MessagingAttribute as A, messagingTracer, parseTraceparent, tracingOff } from '../trace-context.ts';
import type { Delivery, Middleware } from '../types.ts';

/**
 * Tracing: runs the rest of the chain in a CONSUMER span (`process <type>`, messaging semantic
 * conventions, `messaging.operation.type=process`) whose parent is the producer's `traceparent`, so
 * one trace spans every service a flow crosses. With no OpenTelemetry SDK registered the API is a
 * no-op and this costs next to nothing; messages published inside the handler carry the trace on.
 */
export function tracing(tracer: Tracer = messagingTracer()): Middleware {
  return (next) => {
    const traced = async (delivery: Delivery): Promise<void> => {
      // The decoded envelope (decoding runs before tracing) also carries a structured-mode event's trace.
      const envelope = delivery.envelope;
      const remote = parseTraceparent(envelope?.traceparent ?? delivery.header(Header.TraceParent));
      const parentContext = remote ? trace.setSpanContext(context.active(), remote) : context.active();
      const type = envelope?.type ?? delivery.header(Header.Type);
      const span = tracer.startSpan(
        `process ${type ?? delivery.subject}`,
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            [A.System]: 'nats',
            [A.OperationType]: 'process',
            [A.OperationName]: 'process',
            [A.DestinationName]: delivery.subject,
            [A.ConsumerGroup]: delivery.consumer,
            [A.MessageId]: envelope?.id ?? delivery.header(Header.Id) ?? '',
            [A.ConversationId]: envelope?.correlationId ?? delivery.header(Header.CorrelationId) ?? '',
            [A.DeliveryCount]: delivery.deliveryCount,
            [A.BodySize]: delivery.body.length,
            'cloudevents.event_type': type ?? '',
            'cloudevents.event_subject': envelope?.subject ?? delivery.header(Header.Subject) ?? '',
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
    return (delivery) => (tracingOff(tracer) ? next(delivery) : traced(delivery));
  };
}
