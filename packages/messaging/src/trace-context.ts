import {
  context,
  createContextKey,
  ProxyTracer,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The remote span context a W3C `traceparent` names, or `undefined` when it is absent or malformed. */
export function parseTraceparent(text: string | undefined): SpanContext | undefined {
  const match = text ? TRACEPARENT.exec(text) : null;
  if (!match) return undefined;
  const spanContext: SpanContext = {
    traceId: match[1] as string,
    spanId: match[2] as string,
    traceFlags: parseInt(match[3] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return trace.isSpanContextValid(spanContext) ? spanContext : undefined;
}

/** The W3C `traceparent` of a span context. */
export function formatTraceparent(spanContext: SpanContext): string {
  return `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/**
 * The parent of a span started on behalf of a message: the active span when there is one (the
 * handler's own span), else the remote context `traceparent` names, else the active context.
 */
export function parentContext(traceparent: string | undefined): Context {
  const active = context.active();
  if (trace.getSpan(active)) return active;
  const remote = parseTraceparent(traceparent);
  return remote ? trace.setSpanContext(active, remote) : active;
}

// The API's no-op provider (what a ProxyTracerProvider answers before an SDK is registered).
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();
const PROBE = ROOT_CONTEXT.setValue(createContextKey('orderflow.tracing.probe'), true);
const probeActive = (): boolean => context.active() === PROBE;

/**
 * True when a span started with `tracer` could have no effect: it is the API's proxy with no SDK
 * behind it (so spans are non-recording) and no context manager is registered (so nothing inside
 * can see the span). Cheap enough to ask per message, because an SDK may be registered at any time.
 */
export function tracingOff(tracer: Tracer): boolean {
  if (!(tracer instanceof ProxyTracer)) return false;
  const proxy = tracer as unknown as { _delegate?: Tracer; _provider?: { getDelegate?(): unknown } };
  if (proxy._delegate !== undefined || proxy._provider?.getDelegate?.() !== NOOP_PROVIDER) return false;
  return !context.with(PROBE, probeActive);
}

/** The toolkit's tracer (instrumentation scope `@orderflow/messaging`). */
export const messagingTracer = (): Tracer => trace.getTracer('@orderflow/messaging');

/**
 * Attribute names of the OpenTelemetry messaging semantic conventions (v1.27+) used by the toolkit.
 * `messaging.operation.type` is `send` (formerly `publish`), `receive` or `process`.
 */
export const MessagingAttribute = {
  System: 'messaging.system',
  DestinationName: 'messaging.destination.name',
  DestinationTemplate: 'messaging.destination.template',
  OperationType: 'messaging.operation.type',
  OperationName: 'messaging.operation.name',
  MessageId: 'messaging.message.id',
  ConversationId: 'messaging.message.conversation_id',
  ConsumerGroup: 'messaging.consumer.group.name',
  DeliveryCount: 'messaging.nats.delivery_count',
  BodySize: 'messaging.message.body.size',
  RpcSystem: 'rpc.system',
  RpcService: 'rpc.service',
  RpcMethod: 'rpc.method',
} as const;

/** What a PRODUCER span says about the message it sends. */
export interface SendSpanInit {
  /** CloudEvents type (`order.placed.v1`): the span is named `send <type>`. */
  type: string;
  subject: string;
  messageId: string;
  /** `ce-subject` (the aggregate id), when there is one. */
  about?: string | undefined;
  /** The message this one is caused by, when no span is active. */
  causedBy?: string | undefined;
}

/**
 * Runs `send` in a PRODUCER span (`send <type>`, `messaging.operation.type=send`), child of the active
 * span or else of `causedBy`; `send` gets the span's `traceparent` to put on the message, so its
 * consumers' spans are children of this one. With tracing off, `send(undefined)` and nothing else.
 */
export function sendInSpan<T>(
  tracer: Tracer,
  init: SendSpanInit,
  send: (traceparent: string | undefined) => Promise<T>,
): Promise<T> {
  if (tracingOff(tracer)) return send(undefined);
  const span = tracer.startSpan(
    `send ${init.type}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        [MessagingAttribute.System]: 'nats',
        [MessagingAttribute.OperationType]: 'send',
        [MessagingAttribute.OperationName]: 'publish',
        [MessagingAttribute.DestinationName]: init.subject,
        [MessagingAttribute.MessageId]: init.messageId,
        'cloudevents.event_id': init.messageId,
        'cloudevents.event_type': init.type,
        ...(init.about !== undefined && { 'cloudevents.event_subject': init.about }),
      },
    },
    parentContext(init.causedBy),
  );
  return endSpanWhen(span, send(formatTraceparent(span.spanContext())));
}

/** Ends `span` when `work` settles, with an error status and the exception when it failed. */
export function endSpanWhen<T>(span: Span, work: Promise<T>): Promise<T> {
  return work.then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      span.end();
      throw error;
    },
  );
}
