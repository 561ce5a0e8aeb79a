import {
  CreditNoteIssued,
  DeliveryAssigned,
  DeliveryFailed,
  DeliveryReleased,
  DeliveryUnavailable,
  InvoiceCreated,
  InvoiceFailed,
  OrderCancelled,
  OrderCancelRequested,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentFailed,
  PaymentRefunded,
} from '@orderflow/contracts';
import { on, type ConsumerSpec, type RetryPolicy } from '@orderflow/messaging';
import type { OrderStorageDeps } from './deps.ts';
import type { SagaRules } from './saga.ts';

/** Per-consumer settings of this replica. */
export interface ConsumerTuning {
  readonly concurrency?: number;
  readonly maxDeliver: number;
  readonly retry?: Partial<RetryPolicy>;
}

/**
 * The durable consumers of order-storage, one per source it reacts to. Facts are set once and every
 * appended event has a deterministic commit id, so redelivery and replicas change nothing.
 */
export function orderStorageConsumers(
  deps: OrderStorageDeps,
  saga: SagaRules,
  tuning: ConsumerTuning,
): ConsumerSpec[] {
  const { topology, db } = deps;
  const { record, remember, act, confirmIfComplete } = saga;
  const settings = {
    ...(tuning.concurrency !== undefined && { concurrency: tuning.concurrency }),
    maxDeliver: tuning.maxDeliver,
    ...(tuning.retry && { retry: tuning.retry }),
  };
  const payments: ConsumerSpec = {
    ...topology.consumers.orderStorage.payments,
    ...settings,
    handlers: [
      on(PaymentAuthorized, async (event) => {
        const { orderId, paymentId, amount } = event.data;
        const facts = await record(orderId, { kind: 'payment', paymentId, amount }, event);
        await confirmIfComplete(facts, event);
      }),
      on(PaymentDeclined, async (event) => {
        await record(event.data.orderId, { kind: 'declined' }, event);
        await act(event.data.orderId, { type: 'record-decline' }, OrderCancelled, event);
      }),
      on(PaymentRefunded, async (event) => {
        const { orderId, refundId, paymentId, reason, amount } = event.data;
        await record(orderId, { kind: 'refund', refundId, paymentId, reason }, event);
        await act(orderId, { type: 'record-refund', reason, amount }, OrderCancelled, event);
      }),
      on(PaymentFailed, async (event) => {
        await remember(event.data.orderId, event);
        await act(event.data.orderId, { type: 'record-payment-failure' }, OrderCancelled, event);
        // Cancelled uncharged: a charge redriven from the dead letters afterwards finds no token.
        await db.forgetToken(event.data.orderId);
      }),
    ],
  };
  const invoices: ConsumerSpec = {
    ...topology.consumers.orderStorage.invoices,
    ...settings,
    handlers: [
      on(InvoiceCreated, async (event) => {
        const { orderId, invoiceNumber } = event.data;
        await confirmIfComplete(await record(orderId, { kind: 'invoice', invoiceNumber }, event), event);
      }),
      on(InvoiceFailed, async (event) => {
        await remember(event.data.orderId, event);
        await act(
          event.data.orderId,
          { type: 'report-step-failure', reason: 'invoice_failed' },
          OrderCancelRequested,
          event,
        );
      }),
      on(CreditNoteIssued, async (event) => {
        const { orderId, creditNoteNumber } = event.data;
        await record(orderId, { kind: 'credit-note', creditNoteNumber }, event);
      }),
    ],
  };
  const deliveries: ConsumerSpec = {
    ...topology.consumers.orderStorage.deliveries,
    ...settings,
    handlers: [
      on(DeliveryAssigned, async (event) => {
        const { orderId, courierId } = event.data;
        await confirmIfComplete(await record(orderId, { kind: 'courier', courierId }, event), event);
      }),
      on(DeliveryUnavailable, async (event) => {
        await record(event.data.orderId, { kind: 'delivery-unavailable' }, event);
        await act(event.data.orderId, { type: 'report-no-courier' }, OrderCancelRequested, event);
      }),
      on(DeliveryReleased, async (event) => {
        const { orderId, courierId } = event.data;
        await record(orderId, { kind: 'courier-released', courierId }, event);
      }),
      on(DeliveryFailed, async (event) => {
        await remember(event.data.orderId, event);
        await act(
          event.data.orderId,
          { type: 'report-step-failure', reason: 'delivery_failed' },
          OrderCancelRequested,
          event,
        );
      }),
    ],
  };
  return [payments, invoices, deliveries];
}
