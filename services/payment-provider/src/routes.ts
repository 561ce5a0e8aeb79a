import type { Logger } from 'pino';
import type { HttpReply, Route } from './adapters/http.ts';
import type { LedgerStore } from './adapters/jsonl-ledger.ts';
import type { PspMetrics } from './adapters/metrics.ts';
import { parseFaults, type FaultConfig } from './domain/faults.ts';
import {
  cardBehaviour,
  chargeView,
  decideCharge,
  decideRefund,
  errorBody,
  parseChargeRequest,
  parseRefundRequest,
  PspErrorCode,
} from './domain/ledger.ts';
import type { IdempotentRequests } from './idempotent-requests.ts';

export interface PspRouteDependencies {
  store: LedgerStore;
  /** The live fault settings; `PUT /admin/faults` changes this object. */
  faults: FaultConfig;
  requests: IdempotentRequests;
  metrics: PspMetrics;
  logger: Logger;
  newId: (prefix: 'ch' | 're') => string;
  now: () => Date;
}

const invalid = (issues: string[]): HttpReply => ({
  status: 400,
  body: errorBody(PspErrorCode.InvalidRequest, issues.join('; '), { issues }),
});

/** The PSP's HTTP API, one route per row of the table in `app.ts`. */
export function pspRoutes(deps: PspRouteDependencies): Route[] {
  const { store, faults, requests, metrics, logger, newId, now } = deps;
  return [
    {
      method: 'POST',
      path: '/v1/charges',
      handle: async (request) => {
        const body = await request.json();
        const parsed = parseChargeRequest(body);
        if (!parsed.ok) return invalid(parsed.issues);
        return requests.run(request, 'POST /v1/charges', body, async (key) =>
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
        return requests.run(request, 'POST /v1/refunds', body, async (key) => {
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
}
