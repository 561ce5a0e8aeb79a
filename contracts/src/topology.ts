import { defineEndpoint, type EndpointContract, type MessageContract } from '@orderflow/messaging';
import type { ProducerDeclaration, StreamDeclaration } from '@orderflow/messaging';
import {
  CancelOrder,
  CancelOrderReply,
  CustomerRegisteredReply,
  CustomerReply,
  GetCustomer,
  GetOrderHistory,
  GetOrderStatus,
  GetPaymentToken,
  ListOrders,
  ListOrdersReply,
  OrderHistoryReply,
  OrderStatusReply,
  PlaceOrder,
  PaymentTokenReply,
  PlaceOrderReply,
  RegisterCustomer,
} from './endpoints.ts';
import { ContractsError, OrderingErrorCode } from './errors.ts';
import {
  CustomerEvents,
  DeliveryEvents,
  InvoiceEvents,
  OrderEvents,
  OrderPlacedV1,
  PaymentEvents,
} from './events.ts';
import { ID_PATTERN } from './schemas.ts';

/** The services of the ordering context; each one's durable consumers are named after it. */
export const ORDERING_SERVICES = [
  'gateway',
  'order-storage',
  'order-status',
  'payment-processor',
  'create-invoice',
  'assign-delivery',
  'email-notify',
] as const;
export type OrderingService = (typeof ORDERING_SERVICES)[number];

/**
 * Event sources inside the ORDERING stream, one subject namespace per producer:
 * `orders.<orderId>` (order-storage; the Order aggregate's log, one subject per order, appended with
 * optimistic concurrency), `payments.<orderId>` (payment-processor), `invoices.<orderId>`
 * (create-invoice: invoices and credit notes), `deliveries.<orderId>` (assign-delivery), `customers.<customerId>` (order-storage).
 * `all` is every event of the stream (fan-in consumers).
 */
export const EVENT_SOURCES = ['orders', 'payments', 'invoices', 'deliveries', 'customers'] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

/** The sources whose subjects are keyed by order id: together they are one order's whole history. */
export const ORDER_EVENT_SOURCES = [
  'orders',
  'payments',
  'invoices',
  'deliveries',
] as const satisfies readonly EventSource[];
export type OrderEventSource = (typeof ORDER_EVENT_SOURCES)[number];

/** `ce-source` of everything a service publishes (what `runService` sets from its name). */
export function sourceOf(service: OrderingService): string {
  return `orderflow/${service}`;
}

/**
 * The owner of each subject namespace and the events it publishes there: declared once, here.
 * Consumers check it on every event (`ConsumerBinding.producers`), the bus permissions are derived
 * from it, and contracts/README.md lists it. An event type appears under exactly one source.
 */
export const EVENT_PRODUCERS = {
  orders: { service: 'order-storage', events: [...OrderEvents, OrderPlacedV1] },
  customers: { service: 'order-storage', events: CustomerEvents },
  payments: { service: 'payment-processor', events: PaymentEvents },
  invoices: { service: 'create-invoice', events: InvoiceEvents },
  deliveries: { service: 'assign-delivery', events: DeliveryEvents },
} as const satisfies Record<
  EventSource,
  { readonly service: OrderingService; readonly events: readonly MessageContract[] }
>;

/** Where a durable consumer reads: spread it into a `ConsumerSpec` (`{ ...binding, handlers }`). */
export interface ConsumerBinding {
  /** Durable name: `<service>-<source>`. */
  readonly name: string;
  readonly stream: string;
  /** Undefined for `all`. */
  readonly filterSubject?: string;
  /** Every event's `ce-subject` is its order (customer) id: per-order ordering across producers. */
  readonly orderingKey: 'subject';
  /** Owners of the subjects read ({@link EVENT_PRODUCERS}); an event from anyone else is dead-lettered. */
  readonly producers: readonly ProducerDeclaration[];
}

export interface OrderingTopologyOptions {
  /**
   * Prefix for every subject, stream, bucket and endpoint (a lower-case token, e.g. a test's unique
   * name) so several systems can share one NATS server. Default: none (production names).
   */
  namespace?: string | undefined;
  /** Replicas of the ORDERING stream (default 1; 3 in a JetStream cluster). */
  streamReplicas?: number | undefined;
}

const NAMESPACE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const ID = new RegExp(ID_PATTERN);

/** Checks that `id` is one subject token (no `.`, `*`, `>`, spaces). */
export function subjectToken(id: string): string {
  if (!ID.test(id)) {
    throw new ContractsError(
      OrderingErrorCode.InvalidId,
      `"${id}" cannot be used in a subject (${ID_PATTERN})`,
    );
  }
  return id;
}

/**
 * Builds every name of the ordering context: streams, subjects, durable consumers, endpoints,
 * notification subjects, KV buckets and object stores. Services take these from here, never from
 * string literals. `OrderingTopology` is the production instance.
 */
export function orderingTopology(options: OrderingTopologyOptions = {}) {
  const ns = options.namespace;
  if (ns !== undefined && !NAMESPACE.test(ns)) {
    throw new ContractsError('INVALID_NAMESPACE', `namespace "${ns}" must match ${NAMESPACE.source}`);
  }
  const subject = (s: string): string => (ns ? `${ns}.${s}` : s);
  const upper = (s: string): string => (ns ? `${s}_${ns.toUpperCase().replace(/-/g, '_')}` : s);

  const stream = upper('ORDERING');
  const sourceSubject = (source: EventSource, id: string): string => subject(`${source}.${subjectToken(id)}`);
  const filter = (source: EventSource): string => subject(`${source}.*`);
  const sourcePrefix = ns ? `${ns}.` : '';
  const eventSourceOf = (s: string): EventSource | undefined => {
    if (!s.startsWith(sourcePrefix)) return undefined;
    const tokens = s.slice(sourcePrefix.length).split('.');
    const source = tokens[0] as EventSource;
    return tokens.length === 2 && EVENT_SOURCES.includes(source) ? source : undefined;
  };

  const streams: readonly StreamDeclaration[] = [
    {
      name: stream,
      subjects: EVENT_SOURCES.map(filter),
      description:
        'Event log of the ordering context: the Order aggregate (orders.<id>) and the events of every service',
      replicas: options.streamReplicas ?? 1,
    },
  ];

  const producer = (source: EventSource): ProducerDeclaration => {
    const { service, events } = EVENT_PRODUCERS[source];
    return { subjects: filter(source), source: sourceOf(service), types: events.map((e) => e.type) };
  };
  const producers = Object.fromEntries(EVENT_SOURCES.map((s) => [s, producer(s)])) as Record<
    EventSource,
    ProducerDeclaration
  >;

  const consumer = (service: OrderingService, source: EventSource | 'all'): ConsumerBinding => ({
    name: `${service}-${source}`,
    stream,
    ...(source !== 'all' && { filterSubject: filter(source) }),
    orderingKey: 'subject',
    producers: source === 'all' ? EVENT_SOURCES.map((s) => producers[s]) : [producers[source]],
  });

  const endpoint = <Req extends MessageContract, Res extends MessageContract>(
    request: Req,
    response: Res,
  ): EndpointContract<Req, Res> =>
    defineEndpoint({
      name: request.name.replace(/\./g, '-'),
      subject: subject(`ordering.rpc.${request.name}`),
      request,
      response,
    });

  return {
    namespace: ns,
    /** The one stream of the context: every stored event. Provision with `transport.provision(streams)`. */
    stream,
    streams,
    /** Subject of one aggregate's (or one order's) events from a producer. */
    subjects: {
      order: (orderId: string) => sourceSubject('orders', orderId),
      payment: (orderId: string) => sourceSubject('payments', orderId),
      invoice: (orderId: string) => sourceSubject('invoices', orderId),
      delivery: (orderId: string) => sourceSubject('deliveries', orderId),
      customer: (customerId: string) => sourceSubject('customers', customerId),
      /**
       * Every source's subject of one order at once: `*.<orderId>` (`<ns>.*.<orderId>`). It also matches
       * `customers.<orderId>`, so a reader keeps only subjects whose {@link eventSourceOf} is one of
       * `ORDER_EVENT_SOURCES`. nats-server 2.9.10 refuses it as a consumer's filter on the stream (not a
       * subset of the stream's subjects), but takes it as `next_by_subj` of a stream message get.
       */
      orderHistory: (orderId: string) => subject(`*.${subjectToken(orderId)}`),
    },
    /** The event source of a stream subject of this topology (`payments` for `payments.<id>`), or undefined. */
    eventSourceOf,
    /** Wildcard of one producer's events, e.g. `payments.*`. */
    filters: {
      orders: filter('orders'),
      payments: filter('payments'),
      invoices: filter('invoices'),
      deliveries: filter('deliveries'),
      customers: filter('customers'),
    },
    /** Owner (`ce-source`) and event types of each subject namespace, as consumers check them. */
    producers,
    /** Durable consumer of `service` on one source (or `all`). */
    consumer,
    /** The consumers the reference flow uses (see contracts/README.md). */
    consumers: {
      orderStorage: {
        payments: consumer('order-storage', 'payments'),
        invoices: consumer('order-storage', 'invoices'),
        deliveries: consumer('order-storage', 'deliveries'),
      },
      orderStatus: { all: consumer('order-status', 'all') },
      paymentProcessor: { orders: consumer('payment-processor', 'orders') },
      createInvoice: { all: consumer('create-invoice', 'all') },
      assignDelivery: {
        /** Placed, authorized, cancel-requested and cancelled of one order, in stream order. */
        all: consumer('assign-delivery', 'all'),
      },
      emailNotify: { all: consumer('email-notify', 'all') },
    },
    /** Request-reply endpoints (subjects `ordering.rpc.<name>`, outside every stream). */
    endpoints: {
      registerCustomer: endpoint(RegisterCustomer, CustomerRegisteredReply),
      getCustomer: endpoint(GetCustomer, CustomerReply),
      placeOrder: endpoint(PlaceOrder, PlaceOrderReply),
      cancelOrder: endpoint(CancelOrder, CancelOrderReply),
      getOrderStatus: endpoint(GetOrderStatus, OrderStatusReply),
      listOrders: endpoint(ListOrders, ListOrdersReply),
      getOrderHistory: endpoint(GetOrderHistory, OrderHistoryReply),
      /** Served by order-storage for payment-processor only (not routed by the gateway). */
      getPaymentToken: endpoint(GetPaymentToken, PaymentTokenReply),
    },
    /** Core NATS fan-out subjects (not stored). */
    notifications: {
      statusChanged: (orderId: string) => subject(`ordering.notify.status-changed.${subjectToken(orderId)}`),
      /** Wildcard for every order's status changes. */
      statusChangedAll: subject('ordering.notify.status-changed.*'),
    },
    /** JetStream KV bucket of the order-status projection. */
    kv: { orderStatus: upper('ORDER_STATUS') },
    /**
     * JetStream object store of invoice and credit-note PDFs (create-invoice writes, the gateway and
     * email-notify read), and the object name of one invoice's and one credit note's PDF.
     */
    objectStores: {
      invoices: upper('INVOICES'),
      invoicePdf: (invoiceNumber: string) => `invoice-${invoiceNumber}.pdf`,
      creditNotePdf: (creditNoteNumber: string) => `credit-note-${creditNoteNumber}.pdf`,
    },
  } as const;
}

export type OrderingTopology = ReturnType<typeof orderingTopology>;

/** The production names. */
export const OrderingTopology: OrderingTopology = orderingTopology();

/**
 * A deterministic `ce-id` (and `Nats-Msg-Id`) for an event that happens at most once per key, e.g.
 * `eventIdFor(PaymentAuthorized, orderId)`: a retried or concurrent publish is dropped by the server
 * within the stream's duplicate window.
 */
export function eventIdFor(contract: MessageContract, ...key: string[]): string {
  return [contract.type, ...key].join(':');
}
