import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { LedgerStore } from './jsonl-ledger.ts';

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

export interface PspMetrics {
  readonly registry: Registry;
  /** Counts one answered request by method, route pattern and status. */
  readonly observe: (method: string, route: string, status: number) => void;
}

/**
 * The PSP's Prometheus metrics (`GET /metrics`): requests by method, route pattern and status, the
 * ledger's entries by kind and outcome (read from the ledger at scrape time), and the process metrics.
 */
export function pspMetrics(store: LedgerStore): PspMetrics {
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
        const key = `${entry.kind}/${entry.status}`;
        const count = counts.get(key) ?? { kind: entry.kind, status: entry.status, n: 0 };
        count.n += 1;
        counts.set(key, count);
      }
      for (const { kind, status, n } of counts.values()) this.set({ kind, status }, n);
    },
  });
  return {
    registry,
    observe: (method, route, status) => requests.inc({ method, route, status: String(status) }),
  };
}
