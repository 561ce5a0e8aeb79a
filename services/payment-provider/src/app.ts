import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  BadJsonError,
  jsonServer,
  listen,
  shutdown,
  type HttpReply,
  type HttpRequest,
  type Route,
} from './adapters/http.ts';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { LedgerStore } from './adapters/jsonl-ledger.ts';
import { decideFault, parseFaults, type FaultConfig } from './domain/faults.ts';
import { classify, fingerprint } from './domain/idempotency.ts';
import {
  cardBehaviour,
  chargeView,
  decideCharge,
  decideRefund,
  errorBody,
  parseChargeRequest,
  parseRefundRequest,
  PspErrorCode,
  type LedgerEntry,
  type PspResponse,
} from './domain/ledger.ts';

/**
 * prom-client's process metrics, less the three `nodejs_active_*_total` gauges: a gauge named
 * `_total` fails `promtool check metrics`, and each is the sum of its per-type `nodejs_active_*`.
 */
function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(name);
}

/**
 * The fake PSP. Its HTTP API:
 *
 * | route | what |
 * |---|---|
 * | `POST /v1/charges` (`Idempotency-Key`) | charge `{amount, currency, token, reference}` → 201 charge, 402 declined |
 * | `POST /v1/refunds` (`Idempotency-Key`) | refund `{charge, amount?}` → 201 refund; 404/400 with a code |
 * | `GET /v1/charges/:id` | one charge with its refunded amount |
 * | `GET /v1/charges?reference=` | the charges of a merchant reference (order id) |
 * | `GET /ledger?reference=&kind=` | every entry, for tests and audits |
 * | `GET /admin/faults`, `PUT /admin/faults` | read or change fault injection at run time |
 * | `GET /metrics` | Prometheus: requests by route and status, ledger entries by kind and status |
 * | `GET /healthz` | liveness |
 *
 * Idempotency: the same key with the same body answers the recorded response again (header
 * `Idempotent-Replayed: true`), with another body 409 `idempotency_key_reused`, while the first request
 * is still running 409 `idempotency_key_in_use`. Injected 5xx before processing record nothing.
 */
export interface PaymentProviderOptions {
  store: LedgerStore;
  faults: FaultConfig;
  port: number;
  host: string;
  logger: Logger;
  /** Random draws for faults (default `Math.random`). */
  random?: () => number;
  newId?: (prefix: 'ch' | 're') => string;
  now?: () => Date;
}

export interface PaymentProvider {
  readonly url: string;
  readonly port: number;
  readonly faults: FaultConfig;
  stop(): Promise<void>;
}

const REPLAYED = { 'idempotent-replayed': 'true' };

/**
 * The PSP's Prometheus metrics (`GET /metrics`): requests by method, route pattern and status, the
 * ledger's entries by kind and outcome, and the process metrics.
 */
function pspMetrics(store: LedgerStore) {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'payment-provider' });
  collectProcessMetrics(registry);
  const requests = new Counter({
    name: 'http_server_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  new Gauge({
    name: 'payment_provider_ledger_entries',
    help: 'Entries in the ledger, by kind (charge, refund) and status',
    labelNames: ['kind', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, { kind: string; status: string; n: number }>();
      for (const entry of store.entries) {
        const status = entry.status;
        const key = `${entry.kind}/${status}`;
        const count = counts.get(key) ?? { kind: entry.kind, status, n: 0 };
        count.n += 1;
        counts.set(key, count);
      }
      for (const { kind, status, n } of counts.values()) this.set({ kind, status }, n);
    },
  });
  return {
    registry,
    observe: (method: string, route: string, status: number) =>
      requests.inc({ method, route, status: String(status) }),
  };
}

export async function startPaymentProvider(options: PaymentProviderOptions): Promise<PaymentProvider> {
  const { store, logger } = options;
  const faults: FaultConfig = { ...options.faults };
  const random = options.random ?? Math.random;
  const newId = options.newId ?? ((prefix) => `${prefix}_${randomBytes(12).toString('hex')}`);
  const now = options.now ?? (() => new Date());
  const inFlight = new Set<string>();
  let writes: Promise<unknown> = Promise.resolve();
  /** Decisions that read the ledger and write to it run one at a time (no double refund). */
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const result = writes.then(work);
    writes = result.catch(() => undefined);
    return result;
  };

  const reply = (response: PspResponse, headers?: Record<string, string>): HttpReply => ({
    status: response.status,
    body: response.body,
    ...(headers && { headers }),
  });
  const invalid = (issues: string[]): HttpReply => ({
    status: 400,
    body: errorBody(PspErrorCode.InvalidRequest, issues.join('; '), { issues }),
  });

  /** Latency and 5xx before processing; `undefined` means go on. */
  async function injectBefore(): Promise<{ failAfter: boolean; reply?: HttpReply }> {
    const decision = decideFault(faults, random);
    if (decision.fail === 'burst') faults.failNextRequests = Math.max(0, faults.failNextRequests - 1);
    if (decision.delayMs > 0) await sleep(decision.delayMs);
    if (decision.fail === 'burst')
      return {
        failAfter: false,
        reply: {
          status: 503,
          body: errorBody(PspErrorCode.InjectedFault, 'service unavailable (injected burst)'),
        },
      };
    if (decision.fail === 'before')
      return {
        failAfter: false,
        reply: { status: 500, body: errorBody(PspErrorCode.InjectedFault, 'internal error (injected)') },
      };
    return { failAfter: decision.fail === 'after' };
  }

  /** The idempotent part every mutating endpoint shares. */
  async function idempotent(
    request: HttpRequest,
    endpoint: string,
    body: unknown,
    process: (key: string) => Promise<{ entry?: LedgerEntry; response: PspResponse } | 'hang'>,
  ): Promise<HttpReply | 'hang'> {
    const key = request.header('idempotency-key');
    if (!key || key.length > 255)
      return {
        status: 400,
        body: errorBody(
          PspErrorCode.IdempotencyKeyMissing,
          'an Idempotency-Key header (1..255 chars) is required',
        ),
      };
    const fault = await injectBefore();
    if (fault.reply) return fault.reply;
    const print = fingerprint(endpoint, body);
    const known = classify(store.stored(key), print);
    if (known.kind === 'replay') return reply(known.response, REPLAYED);
    if (known.kind === 'conflict')
      return {
        status: 409,
        body: errorBody(
          PspErrorCode.IdempotencyKeyReused,
          `idempotency key ${key} was used with another request`,
        ),
      };
    if (inFlight.has(key))
      return {
        status: 409,
        body: errorBody(
          PspErrorCode.IdempotencyKeyInUse,
          `a request with idempotency key ${key} is in progress`,
        ),
      };
    inFlight.add(key);
    let hanging = false;
    try {
      const outcome = await serialized(async () => {
        const again = classify(store.stored(key), print);
        if (again.kind !== 'new') return again;
        const result = await process(key);
        if (result === 'hang') return result;
        if (result.entry)
          await store.record({
            entry: result.entry,
            idempotency: { key, fingerprint: print, response: result.response },
          });
        return result;
      });
      if (outcome === 'hang') {
        hanging = true;
        hold(request, key);
        return 'hang';
      }
      if ('kind' in outcome) {
        return outcome.kind === 'replay'
          ? reply(outcome.response, REPLAYED)
          : {
              status: 409,
              body: errorBody(
                PspErrorCode.IdempotencyKeyReused,
                `idempotency key ${key} was used with another request`,
              ),
            };
      }
      if (fault.failAfter)
        return {
          status: 500,
          body: errorBody(PspErrorCode.InjectedFault, 'internal error after processing (injected)'),
        };
      return reply(outcome.response);
    } finally {
      if (!hanging) inFlight.delete(key);
    }
  }

  /** `tok_timeout`: keep the connection open without an answer, then drop it; nothing is charged. */
  function hold(request: HttpRequest, key: string): void {
    const socket = request.raw.socket;
    const timer = setTimeout(() => socket.destroy(), faults.hangMs);
    socket.once('close', () => {
      clearTimeout(timer);
      inFlight.delete(key);
    });
  }

  const routes: Route[] = [
    {
      method: 'POST',
      path: '/v1/charges',
      handle: async (request) => {
        const body = await request.json();
        const parsed = parseChargeRequest(body);
        if (!parsed.ok) return invalid(parsed.issues);
        return idempotent(request, 'POST /v1/charges', body, async (key) =>
          cardBehaviour(parsed.value.token) === 'hang'
            ? 'hang'
            : decideCharge(parsed.value, key, { id: newId('ch'), now: now().toISOString() }),
        );
      },
    },
    {
      method: 'POST',
      path: '/v1/refunds',
      handle: async (request) => {
        const body = await request.json();
        const parsed = parseRefundRequest(body);
        if (!parsed.ok) return invalid(parsed.issues);
        return idempotent(request, 'POST /v1/refunds', body, async (key) => {
          const charge = store.charge(parsed.value.charge);
          return decideRefund(parsed.value, charge, charge ? store.refundedAmount(charge.id) : 0, key, {
            id: newId('re'),
            now: now().toISOString(),
          });
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/charges/:id',
      handle: async (request) => {
        const charge = store.charge(request.params.id ?? '');
        if (!charge)
          return {
            status: 404,
            body: errorBody(PspErrorCode.NoSuchCharge, `no charge ${request.params.id}`),
          };
        return { status: 200, body: chargeView(charge, store.refundedAmount(charge.id)) };
      },
    },
    {
      method: 'GET',
      path: '/v1/charges',
      handle: async (request) => {
        const reference = request.query.get('reference');
        const data = store.entries
          .filter((e) => e.kind === 'charge' && (reference === null || e.reference === reference))
          .map((e) => (e.kind === 'charge' ? chargeView(e, store.refundedAmount(e.id)) : undefined));
        return { status: 200, body: { data } };
      },
    },
    {
      method: 'GET',
      path: '/ledger',
      handle: async (request) => {
        const reference = request.query.get('reference');
        const kind = request.query.get('kind');
        const entries = store.entries.filter(
          (e) => (reference === null || e.reference === reference) && (kind === null || e.kind === kind),
        );
        return { status: 200, body: { entries } };
      },
    },
    { method: 'GET', path: '/admin/faults', handle: async () => ({ status: 200, body: faults }) },
    {
      method: 'PUT',
      path: '/admin/faults',
      handle: async (request) => {
        const parsed = parseFaults(await request.json());
        if (!parsed.ok) return invalid(parsed.issues);
        Object.assign(faults, parsed.value);
        logger.info({ faults }, 'faults changed');
        return { status: 200, body: faults };
      },
    },
    { method: 'GET', path: '/healthz', handle: async () => ({ status: 200, body: { status: 'ok' } }) },
    {
      method: 'GET',
      path: '/metrics',
      handle: async () => ({
        status: 200,
        text: await metrics.registry.metrics(),
        headers: { 'content-type': metrics.registry.contentType },
      }),
    },
  ];

  const metrics = pspMetrics(store);
  const server: Server = jsonServer(
    routes,
    (error) => {
      if (error instanceof BadJsonError)
        return { status: 400, body: errorBody(PspErrorCode.InvalidRequest, error.message) };
      logger.error({ err: error }, 'request failed');
      return { status: 500, body: errorBody(PspErrorCode.Internal, 'internal error') };
    },
    metrics.observe,
  );
  const port = await listen(server, options.port, options.host);
  logger.info({ port }, 'payment provider listening');
  return {
    url: `http://${options.host}:${port}`,
    port,
    faults,
    async stop() {
      await shutdown(server);
      await writes;
      await store.close();
    },
  };
}
