import { setTimeout as sleep } from 'node:timers/promises';
import type { HttpReply, HttpRequest } from './adapters/http.ts';
import type { LedgerStore } from './adapters/jsonl-ledger.ts';
import { decideFault, type FaultConfig } from './domain/faults.ts';
import { classify, fingerprint } from './domain/idempotency.ts';
import { errorBody, PspErrorCode, type LedgerEntry, type PspResponse } from './domain/ledger.ts';

/** What a mutating endpoint decides for a new key: an entry to record and its response, or `tok_timeout`'s hang. */
export type Processed = { entry?: LedgerEntry; response: PspResponse } | 'hang';

const REPLAYED = { 'idempotent-replayed': 'true' };

function reply(response: PspResponse, headers?: Record<string, string>): HttpReply {
  return { status: response.status, body: response.body, ...(headers && { headers }) };
}

const keyReused = (key: string): HttpReply => ({
  status: 409,
  body: errorBody(PspErrorCode.IdempotencyKeyReused, `idempotency key ${key} was used with another request`),
});

/**
 * The part every mutating endpoint shares: the `Idempotency-Key` check, fault injection, replay of a
 * recorded response (same key and body), 409 for another body or a request still running, and
 * decisions that read the ledger and write to it one at a time (no double refund).
 */
export class IdempotentRequests {
  readonly #inFlight = new Set<string>();
  #writes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: LedgerStore,
    private readonly faults: FaultConfig,
    private readonly random: () => number,
  ) {}

  /** Waits for the decisions in progress (used on stop). */
  settled(): Promise<unknown> {
    return this.#writes;
  }

  async run(
    request: HttpRequest,
    endpoint: string,
    body: unknown,
    process: (key: string) => Promise<Processed>,
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
    const fault = await this.#injectBefore();
    if (fault.reply) return fault.reply;
    const print = fingerprint(endpoint, body);
    const known = classify(this.store.stored(key), print);
    if (known.kind === 'replay') return reply(known.response, REPLAYED);
    if (known.kind === 'conflict') return keyReused(key);
    if (this.#inFlight.has(key))
      return {
        status: 409,
        body: errorBody(
          PspErrorCode.IdempotencyKeyInUse,
          `a request with idempotency key ${key} is in progress`,
        ),
      };
    this.#inFlight.add(key);
    let hanging = false;
    try {
      const outcome = await this.#serialized(async () => {
        const again = classify(this.store.stored(key), print);
        if (again.kind !== 'new') return again;
        const result = await process(key);
        if (result !== 'hang' && result.entry)
          await this.store.record({
            entry: result.entry,
            idempotency: { key, fingerprint: print, response: result.response },
          });
        return result;
      });
      if (outcome === 'hang') {
        hanging = true;
        this.#hold(request, key);
        return 'hang';
      }
      if ('kind' in outcome)
        return outcome.kind === 'replay' ? reply(outcome.response, REPLAYED) : keyReused(key);
      if (fault.failAfter)
        return {
          status: 500,
          body: errorBody(PspErrorCode.InjectedFault, 'internal error after processing (injected)'),
        };
      return reply(outcome.response);
    } finally {
      if (!hanging) this.#inFlight.delete(key);
    }
  }

  #serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#writes.then(work);
    this.#writes = result.catch(() => undefined);
    return result;
  }

  /** Latency and 5xx before processing; no `reply` means go on. */
  async #injectBefore(): Promise<{ failAfter: boolean; reply?: HttpReply }> {
    const decision = decideFault(this.faults, this.random);
    if (decision.fail === 'burst')
      this.faults.failNextRequests = Math.max(0, this.faults.failNextRequests - 1);
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

  /** `tok_timeout`: keep the connection open without an answer, then drop it; nothing is charged. */
  #hold(request: HttpRequest, key: string): void {
    const socket = request.raw.socket;
    const timer = setTimeout(() => socket.destroy(), this.faults.hangMs);
    socket.once('close', () => {
      clearTimeout(timer);
      this.#inFlight.delete(key);
    });
  }
}
