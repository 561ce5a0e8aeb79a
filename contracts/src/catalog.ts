import type { MessageContract } from '@orderflow/messaging';
import {
  CustomerEvents,
  DeliveryEvents,
  InvoiceEvents,
  OrderEvents,
  OrderStatusChanged,
  PaymentEvents,
} from './events.ts';
import type { EventSource, OrderingService, OrderingTopology } from './topology.ts';

/** One event source of the ORDERING stream: who publishes it, and what. */
export interface SourceEntry {
  readonly producer: OrderingService;
  readonly events: readonly MessageContract[];
  /** What the `<id>` token of the subject is. */
  readonly key: 'orderId' | 'customerId';
}

/**
 * Who publishes what, and who serves which endpoint: the facts the topology's names do not carry,
 * read by the AsyncAPI generator (`asyncApiDocument`). Typed as complete records, so a new source or
 * endpoint does not compile until it is listed here; a new event joins its source's list in
 * `events.ts` and is picked up from there.
 */
export const EventCatalog = {
  sources: {
    orders: { producer: 'order-storage', events: OrderEvents, key: 'orderId' },
    payments: { producer: 'payment-processor', events: PaymentEvents, key: 'orderId' },
    invoices: { producer: 'create-invoice', events: InvoiceEvents, key: 'orderId' },
    deliveries: { producer: 'assign-delivery', events: DeliveryEvents, key: 'orderId' },
    customers: { producer: 'order-storage', events: CustomerEvents, key: 'customerId' },
  } satisfies Record<EventSource, SourceEntry>,
  /** The service answering each endpoint (every replica, in one queue group); the gateway calls them. */
  endpointServers: {
    registerCustomer: 'order-storage',
    getCustomer: 'order-storage',
    placeOrder: 'order-storage',
    cancelOrder: 'order-storage',
    getOrderStatus: 'order-status',
    getOrderHistory: 'order-storage',
    /** Called by payment-processor only (not by the gateway): the payment token, at charge time. */
    getPaymentToken: 'order-storage',
  } satisfies Record<keyof OrderingTopology['endpoints'], OrderingService>,
  /** Core NATS fan-out (not stored): producer and listeners. */
  notifications: {
    statusChanged: { producer: 'order-status', listeners: ['gateway'], event: OrderStatusChanged },
  } satisfies Record<
    string,
    { producer: OrderingService; listeners: readonly OrderingService[]; event: MessageContract }
  >,
} as const;
