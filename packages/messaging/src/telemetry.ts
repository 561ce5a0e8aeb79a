import { MessagingError } from './errors.ts';

/** OTLP encodings an exporter can send over HTTP (`OTEL_EXPORTER_OTLP_PROTOCOL`). */
export const OtlpProtocol = { Json: 'http/json', Protobuf: 'http/protobuf' } as const;
export type OtlpProtocol = (typeof OtlpProtocol)[keyof typeof OtlpProtocol];

/** How the process samples new traces (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`). */
export interface SamplerSettings {
  kind: 'always_on' | 'always_off' | 'traceidratio';
  /** Honour the parent's sampled flag (the `parentbased_*` samplers; the default). */
  parentBased: boolean;
  /** `traceidratio` only: 0..1. */
  ratio: number;
}

/**
 * Where and how a process exports its spans: the standard OpenTelemetry variables, read by
 * {@link tracingSettingsFromEnv} in the composition root. Nothing here reads the environment itself.
 */
export interface TracingSettings {
  /** `service.name` of the resource (`OTEL_SERVICE_NAME`, default: the service's own name). */
  serviceName: string;
  /** Further resource attributes (`OTEL_RESOURCE_ATTRIBUTES`). */
  resourceAttributes: Record<string, string>;
  /** `otlp` exports to {@link url}; `console` prints spans (debugging). */
  exporter: 'otlp' | 'console';
  /** Full URL of the traces endpoint (`…/v1/traces`). */
  url: string;
  protocol: OtlpProtocol;
  /** Headers sent with every export (`OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`). */
  headers: Record<string, string>;
  /** Per-export timeout (`OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`, default 10 000 ms). */
  timeoutMs: number;
  /** Delay between two batch exports (`OTEL_BSP_SCHEDULE_DELAY`, default 5000 ms). */
  scheduleDelayMs: number;
  sampler: SamplerSettings;
}

/** A started SDK. `shutdown` exports what is still buffered, then stops. */
export interface TracingHandle {
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

const value = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
};

/** `k1=v1,k2=v2` (W3C baggage form, values percent-decoded) as the OTel spec reads it. */
function keyValues(text: string | undefined, name: string, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined) return out;
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const at = part.indexOf('=');
    if (at <= 0) {
      problems.push(`${name}: "${part}" is not key=value`);
      continue;
    }
    try {
      out[decodeURIComponent(part.slice(0, at).trim())] = decodeURIComponent(part.slice(at + 1).trim());
    } catch {
      problems.push(`${name}: "${part}" is not percent-encoded correctly`);
    }
  }
  return out;
}

function millis(env: Env, name: string, fallback: number, problems: string[]): number {
  const raw = value(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) problems.push(`${name} must be a whole number of milliseconds`);
  return n;
}

/**
 * The tracing settings of a process from the standard OpenTelemetry variables, or `undefined` when
 * tracing is off: it is on when `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
 * or `OTEL_TRACES_EXPORTER` (`otlp`, `console`) is set, and off for `OTEL_TRACES_EXPORTER=none` or
 * `OTEL_SDK_DISABLED=true`. Protocols: `http/protobuf` (the spec's default) and `http/json`; `grpc`
 * is refused. Throws {@link MessagingError} `INVALID_CONFIG` listing every problem at once.
 */
export function tracingSettingsFromEnv(
  env: Env,
  defaults: { serviceName: string },
): TracingSettings | undefined {
  if (value(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const problems: string[] = [];
  const exporterName = value(env, 'OTEL_TRACES_EXPORTER')?.split(',')[0]?.trim();
  const tracesEndpoint = value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const baseEndpoint = value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (exporterName === 'none') return undefined;
  if (exporterName === undefined && tracesEndpoint === undefined && baseEndpoint === undefined)
    return undefined;
  let exporter: TracingSettings['exporter'] = 'otlp';
  if (exporterName === 'console') exporter = 'console';
  else if (exporterName !== undefined && exporterName !== 'otlp')
    problems.push(`OTEL_TRACES_EXPORTER "${exporterName}" is not supported (otlp, console, none)`);

  // The per-signal endpoint is used as it is; the base one gets the signal's path (OTLP spec).
  const url =
    tracesEndpoint ??
    (baseEndpoint ? `${baseEndpoint.replace(/\/+$/, '')}/v1/traces` : 'http://localhost:4318/v1/traces');
  if (!URL.canParse(url)) problems.push(`the OTLP traces endpoint is not a URL: ${url}`);

  const protocolName =
    value(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ??
    value(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') ??
    'http/protobuf';
  const protocols: readonly string[] = Object.values(OtlpProtocol);
  if (!protocols.includes(protocolName))
    problems.push(`OTLP protocol "${protocolName}" is not supported (${protocols.join(', ')})`);

  const samplerName = value(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  const kind = samplerName.replace(/^parentbased_/, '');
  const ratioText = value(env, 'OTEL_TRACES_SAMPLER_ARG');
  const ratio = ratioText === undefined ? 1 : Number(ratioText);
  if (kind !== 'always_on' && kind !== 'always_off' && kind !== 'traceidratio')
    problems.push(`OTEL_TRACES_SAMPLER "${samplerName}" is not supported`);
  if (kind === 'traceidratio' && !(ratio >= 0 && ratio <= 1))
    problems.push('OTEL_TRACES_SAMPLER_ARG must be a number in 0..1');

  const resourceAttributes = keyValues(
    value(env, 'OTEL_RESOURCE_ATTRIBUTES'),
    'OTEL_RESOURCE_ATTRIBUTES',
    problems,
  );
  const settings: TracingSettings = {
    // OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES, which wins over the default.
    serviceName:
      value(env, 'OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? defaults.serviceName,
    resourceAttributes,
    exporter,
    url,
    protocol: protocolName as OtlpProtocol,
    headers: {
      ...keyValues(value(env, 'OTEL_EXPORTER_OTLP_HEADERS'), 'OTEL_EXPORTER_OTLP_HEADERS', problems),
      ...keyValues(
        value(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
        'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
        problems,
      ),
    },
    timeoutMs: millis(
      env,
      value(env, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT')
        ? 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT'
        : 'OTEL_EXPORTER_OTLP_TIMEOUT',
      10_000,
      problems,
    ),
    scheduleDelayMs: millis(env, 'OTEL_BSP_SCHEDULE_DELAY', 5_000, problems),
    sampler: {
      kind: kind as SamplerSettings['kind'],
      parentBased: samplerName.startsWith('parentbased_'),
      ratio,
    },
  };
  if (problems.length > 0)
    throw new MessagingError('INVALID_CONFIG', `tracing is misconfigured: ${problems.join('; ')}`);
  return settings;
}

/**
 * Starts the OpenTelemetry SDK (tracer provider, AsyncLocalStorage context manager, OTLP exporter)
 * and registers it globally, so every span the toolkit starts is exported. The SDK is imported only
 * here, on demand: a process that never calls this loads none of it.
 */
export async function startTracing(settings: TracingSettings): Promise<TracingHandle> {
  const { installTracing } = await import('./otel-sdk.ts');
  return installTracing(settings);
}
