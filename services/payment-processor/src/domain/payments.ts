import type {
  Money,
  OrderPlaced,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentRefunded,
  RefundReason,
} from '@orderflow/contracts';
import type { PayloadOf } from '@orderflow/messaging';

/** The port to a payment service provider, as this service needs it. */
export interface PaymentGateway {
  /** Charges once per idempotency key. Throws PspUnavailableError (retry) or PspRejectedError (dead letter). */
  charge(request: ChargeRequest): Promise<ChargeOutcome>;
  /** The charges the PSP holds for a merchant reference (the order id). */
  chargesFor(reference: string): Promise<ChargeRecord[]>;
  /** Refunds the rest of a charge once per idempotency key. */
  refund(request: { chargeId: string; idempotencyKey: string }): Promise<RefundRecord>;
}

export interface ChargeRequest {
  idempotencyKey: string;
  reference: string;
  amount: number;
  currency: string;
  token: string;
}

export type ChargeOutcome =
  | { kind: 'authorized'; chargeId: string; created: string }
  | { kind: 'declined'; code: string; message: string; created: string };

export interface ChargeRecord {
  id: string;
  status: 'succeeded' | 'failed';
  amount: number;
  currency: string;
  created: string;
}

export interface RefundRecord {
  id: string;
  chargeId: string;
  amount: number;
  currency: string;
  created: string;
}

/** Idempotency keys: one charge and one refund per order, whoever asks and however often. */
export const paymentKeys = {
  charge: (orderId: string) => orderId,
  refund: (orderId: string) => `refund-${orderId}`,
};

/** Given an order and its payment token (which is not part of the order event), the charge to ask the PSP for. */
export function chargeFor(order: PayloadOf<typeof OrderPlaced>, token: string): ChargeRequest {
  return {
    idempotencyKey: paymentKeys.charge(order.orderId),
    reference: order.orderId,
    amount: order.total,
    currency: order.currency,
    token,
  };
}

export type ChargeResult =
  | { kind: 'authorized'; event: PayloadOf<typeof PaymentAuthorized> }
  | { kind: 'declined'; event: PayloadOf<typeof PaymentDeclined> };

/** Given an order and the PSP's answer, the event to publish. Times come from the PSP, so a replay publishes identical data. */
export function chargeResult(order: PayloadOf<typeof OrderPlaced>, outcome: ChargeOutcome): ChargeResult {
  switch (outcome.kind) {
    case 'authorized':
      return {
        kind: 'authorized',
        event: {
          orderId: order.orderId,
          paymentId: outcome.chargeId,
          amount: { amount: order.total, currency: order.currency },
          authorizedAt: outcome.created,
        },
      };
    case 'declined':
      return {
        kind: 'declined',
        event: {
          orderId: order.orderId,
          code: outcome.code,
          message: outcome.message.slice(0, 500),
          declinedAt: outcome.created,
        },
      };
    default:
      return outcome satisfies never;
  }
}

/**
 * Given the PSP's charges for an order, which one a refund applies to: the succeeded charge (there is at
 * most one, since the charge key is the order id), or none when the payment was declined or never made.
 */
export function refundableCharge(charges: readonly ChargeRecord[]): ChargeRecord | undefined {
  return charges.find((c) => c.status === 'succeeded');
}

/** Given a refund the PSP made, the event to publish. */
export function refundedEvent(
  orderId: string,
  reason: RefundReason,
  refund: RefundRecord,
): PayloadOf<typeof PaymentRefunded> {
  const amount: Money = { amount: refund.amount, currency: refund.currency as Money['currency'] };
  return {
    orderId,
    paymentId: refund.chargeId,
    refundId: refund.id,
    amount,
    reason,
    refundedAt: refund.created,
  };
}
