export {
  CustomerEvents,
  CustomerRegistered,
  DeliveryAssigned,
  DeliveryEvents,
  DeliveryReleased,
  DeliveryUnavailable,
  InvoiceCreated,
  InvoiceEvents,
  OrderCancelled,
  OrderCancelRequested,
  OrderConfirmed,
  OrderEvents,
  OrderingEvents,
  OrderPlaced,
  OrderStatusChanged,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentEvents,
  PaymentRefunded,
} from './events.ts';
export type { OrderingEvent, OrderingEventName } from './events.ts';
export {
  CancelOrder,
  CancelOrderReply,
  CustomerRegisteredReply,
  GetOrderHistory,
  GetOrderStatus,
  OrderHistoryEntry,
  OrderHistoryReply,
  OrderStatusReply,
  OrderView,
  PlaceOrder,
  PlaceOrderReply,
  RegisterCustomer,
} from './endpoints.ts';
export { ContractsError, ORDERING_ERROR_STATUS, OrderingErrorCode } from './errors.ts';
export { ignore, ignoringOthers } from './handlers.ts';
export { formatMoney, priceItems } from './money.ts';
export {
  Address,
  AmountMinor,
  CANCELLATION_REASONS,
  CancellationReason,
  CURRENCIES,
  Currency,
  CURRENCY_MINOR_UNITS,
  CustomerId,
  CustomerRef,
  Email,
  ID_PATTERN,
  MAX_AMOUNT_MINOR,
  Money,
  ORDER_STATUSES,
  OrderId,
  OrderItem,
  OrderLine,
  OrderStatus,
  REFUND_REASONS,
  RefundReason,
  Sku,
  TERMINAL_STATUSES,
  Timestamp,
} from './schemas.ts';
export {
  EVENT_SOURCES,
  eventIdFor,
  ORDERING_SERVICES,
  orderingTopology,
  OrderingTopology,
  subjectToken,
} from './topology.ts';
export type { ConsumerBinding, EventSource, OrderingService, OrderingTopologyOptions } from './topology.ts';
export {
  CHAOS_IDENTITY,
  ENDPOINT_QUEUE,
  EVENT_SOURCE_OWNERS,
  OPERATIONS_IDENTITIES,
  orderingBusIdentities,
  orderingConsumerGrants,
  serviceConsumers,
} from './access.ts';
export type { BusIdentityName } from './access.ts';
