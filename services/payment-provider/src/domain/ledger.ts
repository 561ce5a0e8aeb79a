/**
 * The PSP's ledger rules: what a charge or refund request results in. Pure: ids and time are passed in.
 * Amounts are integer minor units.
 */

export const PspErrorCode = {
  InvalidRequest: 'invalid_request',
  CardDeclined: 'card_declined',
  InsufficientFunds: 'insufficient_funds',
  NoSuchCharge: 'no_such_charge',
  ChargeNotRefundable: 'charge_not_refundable',
  ChargeAlreadyRefunded: 'charge_already_refunded',
  RefundTooLarge: 'refund_too_large',
  IdempotencyKeyReused: 'idempotency_key_reused',
  IdempotencyKeyInUse: 'idempotency_key_in_use',
  IdempotencyKeyMissing: 'idempotency_key_missing',
  InjectedFault: 'injected_fault',
  NotFound: 'not_found',
  Internal: 'internal_error',
} as const;
export type PspErrorCode = (typeof PspErrorCode)[keyof typeof PspErrorCode];

/** Test card tokens, as real PSPs document them for their sandboxes. */
export const TestToken = {
  /** Authorizes. (Any other `tok_…` token authorizes too.) */
  Visa: 'tok_visa',
  /** Declined with `card_declined`. */
  Decline: 'tok_decline',
  /** Declined with `insufficient_funds`. */
  InsufficientFunds: 'tok_insufficient_funds',
  /** Never answers within a client's timeout; nothing is charged. */
  Timeout: 'tok_timeout',
  /** Refused as an invalid request (400 `invalid_request`, "no such token"); nothing is recorded. */
  Invalid: 'tok_invalid',
} as const;

export interface ChargeEntry {
  readonly kind: 'charge';
  readonly id: string;
  readonly reference: string;
  readonly amount: number;
  readonly currency: string;
  readonly status: 'succeeded' | 'failed';
  readonly failureCode?: string;
  readonly idempotencyKey: string;
  readonly createdAt: string;
}

export interface RefundEntry {
  readonly kind: 'refund';
  readonly id: string;
  readonly charge: string;
  readonly reference: string;
  readonly amount: number;
  readonly currency: string;
  readonly status: 'succeeded';
  readonly idempotencyKey: string;
  readonly createdAt: string;
}

export type LedgerEntry = ChargeEntry | RefundEntry;

/** An HTTP-shaped answer: status and JSON body. */
export interface PspResponse {
  readonly status: number;
  readonly body: unknown;
}

export interface ChargeRequest {
  amount: number;
  currency: string;
  token: string;
  /** The merchant's reference (the order id). */
  reference: string;
}

export interface RefundRequest {
  charge: string;
  /** Default: what is left of the charge. */
  amount?: number;
}

export const errorBody = (code: PspErrorCode, message: string, extra: Record<string, unknown> = {}) => ({
  error: { code, message, ...extra },
});

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isText = (v: unknown, max = 200): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max;

/** Validates a charge body, listing every problem. */
export function parseChargeRequest(
  body: unknown,
): { ok: true; value: ChargeRequest } | { ok: false; issues: string[] } {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const issues: string[] = [];
  if (!isInt(b.amount) || b.amount <= 0) issues.push('amount must be a positive integer (minor units)');
  if (typeof b.currency !== 'string' || !/^[A-Z]{3}$/.test(b.currency))
    issues.push('currency must be ISO 4217');
  if (!isText(b.token) || !b.token.startsWith('tok_')) issues.push('token must be a card token (tok_…)');
  else if (b.token === TestToken.Invalid) issues.push(`no such token: ${TestToken.Invalid}`);
  if (!isText(b.reference)) issues.push('reference is required');
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      amount: b.amount as number,
      currency: b.currency as string,
      token: b.token as string,
      reference: b.reference as string,
    },
  };
}

export function parseRefundRequest(
  body: unknown,
): { ok: true; value: RefundRequest } | { ok: false; issues: string[] } {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const issues: string[] = [];
  if (!isText(b.charge)) issues.push('charge is required');
  if (b.amount !== undefined && (!isInt(b.amount) || b.amount <= 0))
    issues.push('amount must be a positive integer (minor units)');
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: { charge: b.charge as string, ...(b.amount !== undefined && { amount: b.amount as number }) },
  };
}

/** What a token does. */
export function cardBehaviour(token: string): 'authorize' | 'decline' | 'insufficient' | 'hang' {
  switch (token) {
    case TestToken.Decline:
      return 'decline';
    case TestToken.InsufficientFunds:
      return 'insufficient';
    case TestToken.Timeout:
      return 'hang';
    default:
      return 'authorize';
  }
}

export function chargeView(charge: ChargeEntry, refunded: number) {
  return {
    id: charge.id,
    object: 'charge',
    reference: charge.reference,
    amount: charge.amount,
    amountRefunded: refunded,
    currency: charge.currency,
    status: charge.status,
    refunded: refunded >= charge.amount,
    ...(charge.failureCode && { failureCode: charge.failureCode }),
    created: charge.createdAt,
  };
}

/**
 * Given a valid charge request (not a hanging token), when it is processed, then a charge is recorded:
 * succeeded (201) or failed (402 with the decline code). Declines are ledger entries too, as at real PSPs.
 */
export function decideCharge(
  request: ChargeRequest,
  idempotencyKey: string,
  ids: { id: string; now: string },
): { entry: ChargeEntry; response: PspResponse } {
  const behaviour = cardBehaviour(request.token);
  const failureCode =
    behaviour === 'decline'
      ? PspErrorCode.CardDeclined
      : behaviour === 'insufficient'
        ? PspErrorCode.InsufficientFunds
        : undefined;
  const entry: ChargeEntry = {
    kind: 'charge',
    id: ids.id,
    reference: request.reference,
    amount: request.amount,
    currency: request.currency,
    status: failureCode ? 'failed' : 'succeeded',
    ...(failureCode && { failureCode }),
    idempotencyKey,
    createdAt: ids.now,
  };
  if (failureCode) {
    return {
      entry,
      response: {
        status: 402,
        body: errorBody(failureCode, 'The card was declined.', {
          type: 'card_error',
          charge: chargeView(entry, 0),
        }),
      },
    };
  }
  return { entry, response: { status: 201, body: chargeView(entry, 0) } };
}

/** Given a charge and its refunds so far, when a refund is asked for, then it is recorded or refused. */
export function decideRefund(
  request: RefundRequest,
  charge: ChargeEntry | undefined,
  refundedSoFar: number,
  idempotencyKey: string,
  ids: { id: string; now: string },
): { entry?: RefundEntry; response: PspResponse } {
  if (!charge) {
    return {
      response: { status: 404, body: errorBody(PspErrorCode.NoSuchCharge, `no charge ${request.charge}`) },
    };
  }
  if (charge.status !== 'succeeded') {
    return {
      response: {
        status: 400,
        body: errorBody(PspErrorCode.ChargeNotRefundable, 'a failed charge cannot be refunded'),
      },
    };
  }
  const left = charge.amount - refundedSoFar;
  if (left <= 0) {
    return {
      response: {
        status: 400,
        body: errorBody(PspErrorCode.ChargeAlreadyRefunded, `charge ${charge.id} is refunded`),
      },
    };
  }
  const amount = request.amount ?? left;
  if (amount > left) {
    return {
      response: {
        status: 400,
        body: errorBody(
          PspErrorCode.RefundTooLarge,
          `refund of ${amount} exceeds the ${left} left on the charge`,
        ),
      },
    };
  }
  const entry: RefundEntry = {
    kind: 'refund',
    id: ids.id,
    charge: charge.id,
    reference: charge.reference,
    amount,
    currency: charge.currency,
    status: 'succeeded',
    idempotencyKey,
    createdAt: ids.now,
  };
  return {
    entry,
    response: {
      status: 201,
      body: {
        id: entry.id,
        object: 'refund',
        charge: charge.id,
        reference: charge.reference,
        amount,
        currency: charge.currency,
        status: entry.status,
        created: entry.createdAt,
      },
    },
  };
}
