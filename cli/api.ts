import type { OrderItem, OrderView } from '@orderflow/contracts';
import type { Address, Currency } from '@orderflow/contracts';
import { CliError, reasonOf } from './errors.ts';

/**
 * A small client of the gateway's HTTP API (see contracts/README.md and services/gateway): used by
 * `orderflow place`, the chaos load and the system tests. Every call returns the status and the parsed
 * body, so a caller can assert on 4xx answers (problem+json) as well as on successes. It sends its
 * bearer token (a customer's from sign-up, or an operator's) on every call; `as(token)` gives a client
 * for another caller.
 */

export interface ApiResponse<T> {
  readonly status: number;
  /** The parsed body: `T` on a 2xx. */
  readonly body: T;
  /** The problem details on a 4xx/5xx. */
  readonly problem: Problem | undefined;
  readonly headers: Headers;
}

/** RFC 7807 problem details as the gateway answers errors. */
export interface Problem {
  readonly type?: string;
  readonly title?: string;
  readonly status?: number;
  readonly detail?: string;
  /** The stable error code (`ORDER_CANCEL_TOO_LATE`…). */
  readonly code?: string;
}

export interface PlaceOrderBody {
  /** Optional for a customer (the token's); required for an operator. */
  readonly customerId?: string;
  readonly items: readonly OrderItem[];
  readonly currency: Currency;
  readonly shippingAddress: Address;
  readonly payment: { readonly token: string };
}

/** One event of an order's history: a CloudEvent 1.0 in structured JSON (`GET /orders/:id/events`). */
export interface HistoryEvent {
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  /** `ce-type`, e.g. `order.placed.v2`. */
  readonly type: string;
  readonly subject: string;
  readonly time: string;
  readonly data: unknown;
  /** 1-based position in the order's history (stream order). */
  readonly sequence: number;
}

/** `POST /customers`: the new customer, and their token when the gateway issues development tokens. */
export interface SignedUp {
  readonly customerId: string;
  readonly token?: string;
}

export class GatewayClient {
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs = 30_000,
    /** Bearer token sent on every call (none: anonymous). */
    readonly token?: string,
  ) {}

  /** `fetch` with the client's timeout; no answer at all is a `GATEWAY_UNREACHABLE` {@link CliError}. */
  async #fetch(url: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
      throw new CliError(
        'GATEWAY_UNREACHABLE',
        timedOut
          ? `the gateway at ${this.baseUrl} did not answer within ${this.timeoutMs} ms`
          : `cannot reach the gateway at ${this.baseUrl} (${reasonOf(error)}); is \`orderflow up\` running? (--api <url>)`,
        { cause: error },
      );
    }
  }

  /** The same gateway as the caller holding `token`. */
  as(token: string | undefined): GatewayClient {
    return new GatewayClient(this.baseUrl, this.timeoutMs, token);
  }

  #auth(): Record<string, string> {
    return this.token === undefined ? {} : { authorization: `Bearer ${this.token}` };
  }

  async #call<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const response = await this.#fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        accept: 'application/json',
        ...(body !== undefined && { 'content-type': 'application/json' }),
        ...this.#auth(),
        ...headers,
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return {
      status: response.status,
      body: parsed as T,
      problem: response.status >= 400 ? (parsed as Problem) : undefined,
      headers: response.headers,
    } satisfies ApiResponse<T>;
  }

  /** Sign-up: the answer carries the customer's token (development issuer); use it with {@link as}. */
  registerCustomer(customer: { email: string; name: string }) {
    return this.#call<SignedUp>('POST', '/customers', customer);
  }

  placeOrder(order: PlaceOrderBody, idempotencyKey: string) {
    return this.#call<{ orderId: string; status: string }>('POST', '/orders', order, {
      'idempotency-key': idempotencyKey,
    });
  }

  getOrder(orderId: string) {
    return this.#call<OrderView>('GET', `/orders/${encodeURIComponent(orderId)}`);
  }

  /** The order's whole history, every service's events, in stream order (CloudEvents batch). */
  history(orderId: string) {
    return this.#call<HistoryEvent[]>('GET', `/orders/${encodeURIComponent(orderId)}/events`);
  }

  cancel(orderId: string) {
    return this.#call<{ orderId: string; status: string; accepted: true }>(
      'POST',
      `/orders/${encodeURIComponent(orderId)}/cancel`,
    );
  }

  /** The invoice PDF's bytes (status 200), or the problem. */
  invoicePdf(orderId: string): Promise<{ status: number; contentType: string | null; bytes: Uint8Array }> {
    return this.#pdf(orderId, 'invoice.pdf');
  }

  /** The credit note PDF's bytes (status 200: the order's invoice was credited), or the problem. */
  creditNotePdf(orderId: string): Promise<{ status: number; contentType: string | null; bytes: Uint8Array }> {
    return this.#pdf(orderId, 'credit-note.pdf');
  }

  async #pdf(
    orderId: string,
    document: 'invoice.pdf' | 'credit-note.pdf',
  ): Promise<{ status: number; contentType: string | null; bytes: Uint8Array }> {
    const response = await this.#fetch(`${this.baseUrl}/orders/${encodeURIComponent(orderId)}/${document}`, {
      headers: this.#auth(),
    });
    return {
      status: response.status,
      contentType: response.headers.get('content-type'),
      bytes: new Uint8Array(await response.arrayBuffer()),
    };
  }
}

/** The terminal statuses of an order. */
export const TERMINAL: readonly string[] = ['confirmed', 'cancelled'];

/** A demo order: two items, shipped to `country`, paid with `token`. */
export function demoOrder(
  customerId: string,
  options: { token?: string; country?: string } = {},
): PlaceOrderBody {
  return {
    customerId,
    items: [
      { sku: 'TEA-SENCHA-100G', quantity: 2, unitPrice: 850 },
      { sku: 'MUG-STONEWARE', quantity: 1, unitPrice: 1_900 },
    ],
    currency: 'EUR',
    shippingAddress: {
      line1: '1 Demo Street',
      city: 'Berlin',
      postalCode: '10115',
      country: options.country ?? 'DE',
    },
    payment: { token: options.token ?? 'tok_visa' },
  };
}
