import type { MessageContract } from '@orderflow/messaging';
import { OrderStatusChanged } from './events.ts';
import type { EventSource, OrderingService, OrderingTopology } from './topology.ts';

/**
 * What the topology's names do not carry, read by the AsyncAPI generator (`asyncApiDocument`): what
 * each source's subject token is, who serves which endpoint, and the fan-out notifications. Who
 * publishes which events is `EVENT_PRODUCERS` (topology.ts), declared once. Typed as complete
 * records, so a new source or endpoint does not compile until it is listed here.
 */
export const EventCatalog = {
  /** What the `<id>` token of each source's subjects is. */
  subjectKeys: {
    orders: 'orderId',
    payments: 'orderId',
    invoices: 'orderId',
    deliveries: 'orderId',
    customers: 'customerId',
  } satisfies Record<EventSource, 'orderId' | 'customerId'>,
  /** The service answering each endpoint (every replica, in one queue group); the gateway calls them. */
  endpointServers: {
    registerCustomer: 'order-storage',
    getCustomer: 'order-storage',
    placeOrder: 'order-storage',
    cancelOrder: 'order-storage',
    getOrderStatus: 'order-status',
    listOrders: 'order-status',
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
