import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { OrderingErrorCode } from '@orderflow/contracts';
import { demoOrder, type GatewayClient, type Problem } from '../api.ts';
import type { SeededRandom } from './random.ts';

/**
 * The chaos run's load: orders placed through the gateway's HTTP API as a careful client would —
 * each customer signed up and acting with their own token, one Idempotency-Key per order, retried with
 * the same key after a 503 or a connection that gave no answer (the gateway is restarting), and after
 * a 429 once `Retry-After` has passed, until a 2xx or `giveUpAfterMs`.
 */

/** What an order is meant to exercise, and so how it must end. */
export type OrderKind =
  /** `tok_visa` to DE → `confirmed`. */
  | 'normal'
  /** `tok_decline` → `cancelled` / `payment_declined`, never charged. */
  | 'decline'
  /** Country AQ (no courier) → refund → `cancelled` / `delivery_unavailable`. */
  | 'unserved'
  /** A customer cancel shortly after placing: `customer_request` if accepted, else `confirmed`. */
  | 'cancel'
  /**
   * `tok_invalid`: the PSP refuses the charge as such, a permanent failure of the payment step →
   * dead letter in payment-processor, `payment.failed` → `cancelled` / `payment_failed`, never charged.
   */
  | 'invalid-card';

export interface DrivenOrder {
  readonly orderId: string;
  readonly customerId: string;
  readonly kind: OrderKind;
  /** Milliseconds since the run started when the gateway accepted it. */
  readonly acceptedAtMs: number;
  /** Placed right after a fault to time the recovery (an ordinary order otherwise). */
  readonly probe: boolean;
  /** For `cancel` orders: whether the gateway accepted the cancellation (`false`: 409 too late). */
  cancelAccepted?: boolean;
}

export interface Customer {
  readonly customerId: string;
  readonly email: string;
  /** The bearer token sign-up gave. */
  readonly token: string;
}

/** Every HTTP answer the load got, by operation and status (`POST /orders 201`, `… no answer`). */
export interface AnswerTally {
  readonly counts: Record<string, number>;
  /** Answers a correct system never gives to valid requests: 5xx other than 503, unexpected 4xx. */
  readonly unexpected: string[];
  /** Requests that never got a 2xx (or a final 409 for a cancel) within `giveUpAfterMs`. */
  readonly gaveUp: string[];
}

export interface LoadOptions {
  /** Retry one request for at most this long (default 120 000 ms). */
  giveUpAfterMs?: number;
  /** Share of each kind (the rest is `normal`); defaults 0.08 / 0.05 / 0.07 / 0.03. */
  mix?: { decline: number; unserved: number; cancel: number; invalidCard?: number };
}

const RETRY_PAUSE_MS = 200;

export class LoadDriver {
  readonly orders: DrivenOrder[] = [];
  readonly customers: Customer[] = [];
  readonly #counts: Record<string, number> = {};
  readonly #unexpected: string[] = [];
  readonly #gaveUp: string[] = [];
  readonly #started = Date.now();
  readonly #giveUpAfterMs: number;
  readonly #mix: { decline: number; unserved: number; cancel: number; invalidCard: number };

  constructor(
    private readonly api: GatewayClient,
    private readonly random: SeededRandom,
    options: LoadOptions = {},
  ) {
    this.#giveUpAfterMs = options.giveUpAfterMs ?? 120_000;
    this.#mix = { invalidCard: 0.03, ...(options.mix ?? { decline: 0.08, unserved: 0.05, cancel: 0.07 }) };
  }

  get answers(): AnswerTally {
    return { counts: { ...this.#counts }, unexpected: [...this.#unexpected], gaveUp: [...this.#gaveUp] };
  }

  /** Milliseconds since the driver was made. */
  elapsedMs(): number {
    return Date.now() - this.#started;
  }

  async registerCustomers(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const email = `chaos-${i}-${randomUUID().slice(0, 8)}@example.com`;
      const response = await this.#retry('POST /customers', () =>
        this.api.registerCustomer({ email, name: `Chaos Customer ${i}` }),
      );
      if (response?.body.token === undefined) {
        if (response) this.#unexpected.push('POST /customers → 201 without a token');
        continue;
      }
      this.customers.push({ customerId: response.body.customerId, email, token: response.body.token });
    }
    if (this.customers.length === 0) throw new Error('no customer could be registered');
  }

  /**
   * Places `count` orders at `ratePerSecond`, at most `maxInFlight` requests at once; `onPlaced` is
   * called after each (for progress). Resolves when every order was accepted or given up.
   */
  async run(options: {
    count: number;
    ratePerSecond: number;
    maxInFlight?: number;
    onPlaced?: () => void;
  }): Promise<void> {
    const maxInFlight = options.maxInFlight ?? 64;
    const interval = 1_000 / options.ratePerSecond;
    const start = Date.now();
    const running = new Set<Promise<void>>();
    for (let i = 0; i < options.count; i++) {
      const due = start + i * interval;
      if (due > Date.now()) await sleep(due - Date.now());
      while (running.size >= maxInFlight) await Promise.race(running);
      const task = this.placeOne(this.#pickKind()).then(() => {
        running.delete(task);
        options.onPlaced?.();
      });
      running.add(task);
    }
    await Promise.all(running);
  }

  /** Places one order of `kind` (and, for `cancel`, asks to cancel it); undefined when given up. */
  async placeOne(kind: OrderKind, options: { probe?: boolean } = {}): Promise<DrivenOrder | undefined> {
    const customer = this.random.pick(this.customers);
    const body = demoOrder(customer.customerId, {
      ...(kind === 'decline' && { token: 'tok_decline' }),
      ...(kind === 'invalid-card' && { token: 'tok_invalid' }),
      ...(kind === 'unserved' && { country: 'AQ' }),
    });
    const key = randomUUID();
    const cancelAfterMs = kind === 'cancel' ? this.random.int(0, 400) : 0;
    const api = this.api.as(customer.token);
    const response = await this.#retry('POST /orders', () => api.placeOrder(body, key));
    if (!response) return undefined;
    const order: DrivenOrder = {
      orderId: response.body.orderId,
      customerId: customer.customerId,
      kind,
      acceptedAtMs: this.elapsedMs(),
      probe: options.probe ?? false,
    };
    this.orders.push(order);
    if (kind === 'cancel') {
      await sleep(cancelAfterMs);
      const cancel = await this.#retry('POST /orders/:id/cancel', () => api.cancel(order.orderId), {
        final: (response) => response.status === 409,
      });
      // ALREADY_CANCELLED answers a retry whose first attempt went through but lost its reply.
      if (cancel !== undefined)
        order.cancelAccepted =
          cancel.status < 300 || cancel.problem?.code === OrderingErrorCode.AlreadyCancelled;
    }
    return order;
  }

  #pickKind(): OrderKind {
    const roll = this.random.next();
    const { decline, unserved, cancel, invalidCard } = this.#mix;
    if (roll < decline) return 'decline';
    if (roll < decline + unserved) return 'unserved';
    if (roll < decline + unserved + cancel) return 'cancel';
    if (roll < decline + unserved + cancel + invalidCard) return 'invalid-card';
    return 'normal';
  }

  /**
   * Calls `request` until it answers 2xx (or an answer `final` accepts), retrying 503s, 409s of two
   * writers racing (`ORDER_CONCURRENT_UPDATE`, "the caller may retry"), 429s after their Retry-After
   * and requests that got no answer; tallies every answer.
   */
  async #retry<T extends { status: number; body: unknown; problem: Problem | undefined; headers: Headers }>(
    operation: string,
    request: () => Promise<T>,
    options: { final?: (response: T) => boolean } = {},
  ): Promise<T | undefined> {
    const deadline = Date.now() + this.#giveUpAfterMs;
    for (;;) {
      let response: T | undefined;
      let pauseMs = RETRY_PAUSE_MS;
      try {
        response = await request();
      } catch {
        this.#count(`${operation} no answer`);
      }
      if (response !== undefined) {
        const { status } = response;
        const racing = status === 409 && response.problem?.code === OrderingErrorCode.Conflict;
        this.#count(`${operation} ${status}${racing ? ' (race, retried)' : ''}`);
        if (!racing && ((status >= 200 && status < 300) || options.final?.(response))) return response;
        const retryAfterS = Number(response.headers.get('retry-after'));
        if (status === 429)
          pauseMs = (Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS : 1) * 1_000;
        else if (status !== 503 && !racing) {
          this.#unexpected.push(`${operation} → ${status} ${JSON.stringify(response.body)}`);
          return undefined;
        }
      }
      if (Date.now() > deadline) {
        this.#gaveUp.push(`${operation}: no 2xx within ${this.#giveUpAfterMs} ms`);
        return undefined;
      }
      await sleep(pauseMs);
    }
  }

  #count(key: string): void {
    this.#counts[key] = (this.#counts[key] ?? 0) + 1;
  }
}
