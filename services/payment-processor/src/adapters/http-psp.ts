import { PspRejectedError, PspUnavailableError } from '../errors.ts';
import type {
  ChargeOutcome,
  ChargeRecord,
  ChargeRequest,
  PaymentGateway,
  RefundRecord,
} from '../domain/payments.ts';

interface PspError {
  error?: { code?: string; message?: string; charge?: { id?: string; created?: string } };
}

/**
 * {@link PaymentGateway} over the PSP's HTTP API (the fake payment-provider speaks the same API).
 * Every call has a deadline; a timeout, a network error, a 5xx, a 429 or a 409 `idempotency_key_in_use`
 * is a {@link PspUnavailableError} (retry later with the same key); any other 4xx is a {@link PspRejectedError}.
 */
export class HttpPaymentGateway implements PaymentGateway {
  constructor(private readonly options: { baseUrl: string; timeoutMs: number }) {}

  async #call(operation: string, method: 'GET' | 'POST', path: string, body?: unknown, key?: string) {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.options.baseUrl), {
        method,
        headers: {
          accept: 'application/json',
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...(key !== undefined && { 'idempotency-key': key }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (cause) {
      const timedOut = cause instanceof Error && cause.name === 'TimeoutError';
      throw new PspUnavailableError(
        operation,
        timedOut ? `no answer within ${this.options.timeoutMs} ms` : `unreachable (${String(cause)})`,
        undefined,
        { cause },
      );
    }
    let json: unknown;
    try {
      json = await response.json();
    } catch (cause) {
      throw new PspUnavailableError(operation, `unreadable ${response.status} answer`, response.status, {
        cause,
      });
    }
    return { status: response.status, json };
  }

  #fail(operation: string, status: number, json: unknown): never {
    const error = (json as PspError).error ?? {};
    const code = error.code ?? `http_${status}`;
    const message = error.message ?? '';
    if (status >= 500 || status === 429 || (status === 409 && code === 'idempotency_key_in_use')) {
      throw new PspUnavailableError(operation, `${status} ${code} ${message}`, status);
    }
    throw new PspRejectedError(operation, status, code, message);
  }

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    const { status, json } = await this.#call(
      'charge',
      'POST',
      '/v1/charges',
      {
        amount: request.amount,
        currency: request.currency,
        token: request.token,
        reference: request.reference,
      },
      request.idempotencyKey,
    );
    if (status === 201 || status === 200) {
      const charge = json as { id: string; created: string };
      return { kind: 'authorized', chargeId: charge.id, created: charge.created };
    }
    if (status === 402) {
      const error = (json as PspError).error ?? {};
      return {
        kind: 'declined',
        code: error.code ?? 'declined',
        message: error.message ?? '',
        created: error.charge?.created ?? new Date().toISOString(),
      };
    }
    return this.#fail('charge', status, json);
  }

  async chargesFor(reference: string): Promise<ChargeRecord[]> {
    const { status, json } = await this.#call(
      'list charges',
      'GET',
      `/v1/charges?${new URLSearchParams({ reference }).toString()}`,
    );
    if (status !== 200) return this.#fail('list charges', status, json);
    return (json as { data: ChargeRecord[] }).data;
  }

  async refund(request: { chargeId: string; idempotencyKey: string }): Promise<RefundRecord> {
    const { status, json } = await this.#call(
      'refund',
      'POST',
      '/v1/refunds',
      { charge: request.chargeId },
      request.idempotencyKey,
    );
    if (status !== 201 && status !== 200) return this.#fail('refund', status, json);
    const refund = json as { id: string; charge: string; amount: number; currency: string; created: string };
    return {
      id: refund.id,
      chargeId: refund.charge,
      amount: refund.amount,
      currency: refund.currency,
      created: refund.created,
    };
  }
}
