export {
  CreditNoteIssued,
  CustomerEvents,
  CustomerRegistered,
  DeliveryAssigned,
  DeliveryEvents,
  DeliveryFailed,
  DeliveryReleased,
  DeliveryUnavailable,
  InvoiceCreated,
  InvoiceEvents,
  InvoiceFailed,
  LegacyOrderingEvents,
  OrderCancelled,
  OrderCancelRequested,
  OrderConfirmed,
  OrderEvents,
  OrderingEvents,
  OrderPlaced,
  OrderPlacedV1,
  OrderStatusChanged,
  PaymentAuthorized,
  PaymentDeclined,
  PaymentEvents,
  PaymentFailed,
  PaymentRefunded,
} from './events.ts';
export type { OrderingEvent, OrderingEventName } from './events.ts';
export {
  CancelOrder,
  CancelOrderReply,
  CustomerRegisteredReply,
  CustomerReply,
  GetCustomer,
  GetOrderHistory,
  GetOrderStatus,
  GetPaymentToken,
  OrderHistoryEntry,
  OrderHistoryReply,
  OrderStatusReply,
  OrderView,
  PaymentTokenReply,
  PlaceOrder,
  PlaceOrderReply,
  RegisterCustomer,
} from './endpoints.ts';
export { ContractsError, ORDERING_ERROR_STATUS, OrderingErrorCode } from './errors.ts';
export { stepFailure } from './failures.ts';
export { ignore, ignoringOthers, onOrderPlaced } from './handlers.ts';
export { formatMoney, priceItems } from './money.ts';
export { OwnerPublisher, producerOf } from './producers.ts';
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
  StepFailure,
  TERMINAL_STATUSES,
  Timestamp,
} from './schemas.ts';
export {
  EVENT_PRODUCERS,
  EVENT_SOURCES,
  eventIdFor,
  ORDER_EVENT_SOURCES,
  ORDERING_SERVICES,
  orderingTopology,
  OrderingTopology,
  sourceOf,
  subjectToken,
} from './topology.ts';
export type {
  ConsumerBinding,
  EventSource,
  OrderEventSource,
  OrderingService,
  OrderingTopologyOptions,
} from './topology.ts';
export { asyncApiDocument, asyncApiText, ENDPOINT_QUEUE_GROUP } from './asyncapi.ts';
export { EventCatalog } from './catalog.ts';
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
