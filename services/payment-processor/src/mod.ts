export { HttpPaymentGateway } from './adapters/http-psp.ts';
export { paymentProcessorConsumers, startPaymentProcessor } from './app.ts';
export type { PaymentProcessorOptions } from './app.ts';
export { configFromEnv } from './config.ts';
export type { PaymentProcessorConfig } from './config.ts';
export { chargeFor, chargeResult, paymentKeys, refundableCharge, refundedEvent } from './domain/payments.ts';
export type {
  ChargeOutcome,
  ChargeRecord,
  ChargeRequest,
  PaymentGateway,
  RefundRecord,
} from './domain/payments.ts';
export { PaymentErrorCode, PspRejectedError, PspUnavailableError } from './errors.ts';
