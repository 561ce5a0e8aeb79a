import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { BadJsonError, jsonServer, listen, shutdown } from './adapters/http.ts';
import type { LedgerStore } from './adapters/jsonl-ledger.ts';
import { pspMetrics } from './adapters/metrics.ts';
import type { FaultConfig } from './domain/faults.ts';
import { errorBody, PspErrorCode } from './domain/ledger.ts';
import { IdempotentRequests } from './idempotent-requests.ts';
import { pspRoutes } from './routes.ts';

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

export async function startPaymentProvider(options: PaymentProviderOptions): Promise<PaymentProvider> {
  const { store, logger } = options;
  const faults: FaultConfig = { ...options.faults };
  const requests = new IdempotentRequests(store, faults, options.random ?? Math.random);
  const metrics = pspMetrics(store);
  const routes = pspRoutes({
    store,
    faults,
    requests,
    metrics,
    logger,
    newId: options.newId ?? ((prefix) => `${prefix}_${randomBytes(12).toString('hex')}`),
    now: options.now ?? (() => new Date()),
  });
  const server = jsonServer(
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
      await requests.settled();
      await store.close();
    },
  };
}
