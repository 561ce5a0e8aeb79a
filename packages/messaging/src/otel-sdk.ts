// The OpenTelemetry SDK, loaded only by `startTracing` (a dynamic import): a process without tracing
// configured never loads these modules.
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { SamplerSettings, TracingHandle, TracingSettings } from './telemetry.ts';

function sampler(settings: SamplerSettings): Sampler {
  let root: Sampler;
  switch (settings.kind) {
    case 'always_on':
      root = new AlwaysOnSampler();
      break;
    case 'always_off':
      root = new AlwaysOffSampler();
      break;
    case 'traceidratio':
      root = new TraceIdRatioBasedSampler(settings.ratio);
      break;
    default:
      return settings.kind satisfies never;
  }
  return settings.parentBased ? new ParentBasedSampler({ root }) : root;
}

function exporter(settings: TracingSettings): SpanExporter {
  if (settings.exporter === 'console') return new ConsoleSpanExporter();
  const config = { url: settings.url, headers: settings.headers, timeoutMillis: settings.timeoutMs };
  switch (settings.protocol) {
    case 'http/json':
      return new OtlpJsonExporter(config);
    case 'http/protobuf':
      return new OtlpProtobufExporter(config);
    default:
      return settings.protocol satisfies never;
  }
}

export function installTracing(settings: TracingSettings): TracingHandle {
  const provider = new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ ...settings.resourceAttributes, 'service.name': settings.serviceName }),
    ),
    sampler: sampler(settings.sampler),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: exporter(settings),
        scheduledDelayMillis: settings.scheduleDelayMs,
      }),
    ],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  let done: Promise<void> | undefined;
  return {
    shutdown: () =>
      (done ??= provider.shutdown().finally(() => {
        trace.disable();
        context.disable();
      })),
  };
}
