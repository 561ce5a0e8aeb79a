import { context, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { parseTraceparent, tracingOff } from '@orderflow/messaging';
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { Counter, Histogram, type Registry } from 'prom-client';

/** `http.route` of a request that matched no route (404): never the raw path, which is unbounded. */
const UNMATCHED_ROUTE = 'unmatched';

/** The route pattern that answered (`/orders/:id`), read once the handlers ran. */
function routeOf(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const route = routes[i];
    // `app.use` middleware is registered for ALL methods; the handler's entry is the route.
    if (route && route.method !== 'ALL') return route.path;
  }
  return UNMATCHED_ROUTE;
}

const instruments = new WeakMap<Registry, { requests: Counter<string>; duration: Histogram<string> }>();

function httpMetrics(registry: Registry) {
  let metrics = instruments.get(registry);
  if (!metrics) {
    const labelNames = ['method', 'route', 'status'];
    metrics = {
      requests: new Counter({
        name: 'http_server_requests_total',
        help: 'HTTP requests answered, by method, route pattern and status code',
        labelNames,
        registers: [registry],
      }),
      duration: new Histogram({
        name: 'http_server_request_duration_seconds',
        help: 'Time from request to response head, by method, route pattern and status code',
        labelNames,
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [registry],
      }),
    };
    instruments.set(registry, metrics);
  }
  return metrics;
}

/**
 * HTTP observability, outermost middleware of the gateway: counts and times every request by
 * method, route pattern (`http.route`, never the raw path) and status, and — with an OpenTelemetry
 * SDK registered — runs it in a SERVER span (`<method> <route>`, HTTP semantic conventions), child
 * of the caller's `traceparent` when it sends one, so the services' spans join the caller's trace.
 */
export function observeHttp(options: { registry?: Registry; tracer?: Tracer } = {}): MiddlewareHandler {
  const metrics = options.registry ? httpMetrics(options.registry) : undefined;
  const tracer = options.tracer ?? trace.getTracer('@orderflow/gateway');
  const record = (c: Context, route: string, started: number) => {
    if (!metrics) return;
    const labels = { method: c.req.method, route, status: String(c.res.status) };
    metrics.requests.inc(labels);
    metrics.duration.observe(labels, (performance.now() - started) / 1000);
  };
  return async (c, next) => {
    const started = performance.now();
    if (tracingOff(tracer)) {
      await next();
      record(c, routeOf(c), started);
      return;
    }
    const remote = parseTraceparent(c.req.header('traceparent'));
    const parent = remote ? trace.setSpanContext(context.active(), remote) : context.active();
    const url = new URL(c.req.url);
    const span = tracer.startSpan(
      c.req.method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': c.req.method,
          'url.path': url.pathname,
          'url.scheme': url.protocol.replace(':', ''),
          'server.address': url.hostname,
          ...(url.port !== '' && { 'server.port': Number(url.port) }),
          ...(c.req.header('user-agent') !== undefined && {
            'user_agent.original': c.req.header('user-agent'),
          }),
        },
      },
      parent,
    );
    try {
      await context.with(trace.setSpan(parent, span), () => next());
    } finally {
      const route = routeOf(c);
      const status = c.res.status;
      if (route !== UNMATCHED_ROUTE) {
        span.setAttribute('http.route', route);
        span.updateName(`${c.req.method} ${route}`);
      }
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      record(c, route, started);
    }
  };
}
