import {
  BucketSubjects,
  DeadLetterTopology,
  ProvisioningTopology,
  type BusIdentity,
  type ConsumerGrant,
  type DurableAccess,
} from '@orderflow/messaging';
import type { ConsumerBinding, EventSource, OrderingService, OrderingTopology } from './topology.ts';

/**
 * Who does what on the bus, per identity of the ordering context: the one declaration the NATS
 * permissions (`busPermissions`), the provisioner's grants and the table in docs/security.md are
 * derived from. Keep it in step with the services' `app.ts` (a service that does more than declared
 * here is refused by the server, and the system tests fail on the permission violation).
 */

/** Which service produces each event source: the only one allowed to publish on it. */
export const EVENT_SOURCE_OWNERS = {
  orders: 'order-storage',
  payments: 'payment-processor',
  invoices: 'create-invoice',
  deliveries: 'assign-delivery',
  customers: 'order-storage',
} as const satisfies Record<EventSource, OrderingService>;

/** Identities that are not services: who provisions, and who operates the system from the CLI. */
export const OPERATIONS_IDENTITIES = ['provisioner', 'operator'] as const;
/** The chaos harness's identity (also forges poison events); generated only for chaos runs. */
export const CHAOS_IDENTITY = 'chaos';

export type BusIdentityName =
  OrderingService | (typeof OPERATIONS_IDENTITIES)[number] | typeof CHAOS_IDENTITY;

/** Queue group of every request-reply endpoint (the NATS micro default). */
export const ENDPOINT_QUEUE = 'q';

/** The durable consumers each service reads, as the topology names them. */
export function serviceConsumers(topology: OrderingTopology): Record<OrderingService, ConsumerBinding[]> {
  const c = topology.consumers;
  return {
    gateway: [],
    'order-storage': [c.orderStorage.payments, c.orderStorage.invoices, c.orderStorage.deliveries],
    'order-status': [c.orderStatus.all],
    'payment-processor': [c.paymentProcessor.orders],
    'create-invoice': [c.createInvoice.all],
    'assign-delivery': [c.assignDelivery.all],
    'email-notify': [c.emailNotify.all],
  };
}

/**
 * Consumers whose dead letters a service writes although they are not durables: order-storage's
 * read model is fed by an ordered consumer per replica and files its dead letters under this name.
 */
function extraDeadLetterNames(topology: OrderingTopology, service: OrderingService): string[] {
  return service === 'order-storage' ? [topology.consumer('order-storage', 'orders').name] : [];
}

/** What a service consumer needs: the durable, its redrive durable, and its dead-letter subject. */
function consumerAccess(bindings: readonly ConsumerBinding[]): {
  consumers: DurableAccess[];
  deadLetters: string[];
} {
  return {
    consumers: bindings.flatMap((b) => [
      { stream: b.stream, durable: b.name },
      { stream: DeadLetterTopology.stream, durable: DeadLetterTopology.redriveDurable(b.stream, b.name) },
    ]),
    deadLetters: bindings.map((b) => DeadLetterTopology.deadLetterSubject(b.stream, b.name)),
  };
}

/** Every identity of the ordering context (plus the chaos harness's when `chaos` is set). */
export function orderingBusIdentities(
  topology: OrderingTopology,
  options: { chaos?: boolean } = {},
): BusIdentity[] {
  const e = topology.endpoints;
  const consumers = serviceConsumers(topology);
  const owned = (service: OrderingService): string[] =>
    (Object.keys(EVENT_SOURCE_OWNERS) as EventSource[])
      .filter((source) => EVENT_SOURCE_OWNERS[source] === service)
      .map((source) => topology.filters[source]);
  const dlq = DeadLetterTopology.stream;
  const service = (
    name: OrderingService,
    description: string,
    rest: Omit<BusIdentity, 'name' | 'description'>,
  ): BusIdentity => {
    const access = consumerAccess(consumers[name]);
    return {
      name,
      description,
      discovery: name,
      publishes: owned(name),
      ...access,
      deadLetters: [
        ...access.deadLetters,
        ...extraDeadLetterNames(topology, name).map((n) =>
          DeadLetterTopology.deadLetterSubject(topology.stream, n),
        ),
      ],
      streamInfo: [topology.stream, ...(access.consumers.length > 0 ? [dlq] : [])],
      ...(access.consumers.length > 0 && { provisioningRequests: [ProvisioningTopology.subject(name)] }),
      ...rest,
    };
  };
  const serves = (...endpoints: { subject: string }[]) =>
    endpoints.map((endpoint) => ({ subject: endpoint.subject, queue: ENDPOINT_QUEUE }));
  // The payment token is payment-processor's to ask for, no one else's (not the gateway's).
  const edgeEndpoints = Object.values(e)
    .filter((endpoint) => endpoint !== e.getPaymentToken)
    .map((endpoint) => endpoint.subject);
  const operator: BusIdentity = {
    name: 'operator',
    description:
      'the `orderflow` CLI: dlq list/redrive/discard, tail, doctor (`$SRV` discovery); lists streams and consumers',
    inspects: true,
    publishes: [DeadLetterTopology.redriveSubject('*', '*')],
    requests: ['$SRV.>'],
    listens: [topology.notifications.statusChangedAll],
    streamInfo: [dlq],
    // The order log too: `orderflow trace` reads an order's events with message gets.
    messageGets: [dlq, topology.stream],
    messageDeletes: [dlq],
  };

  const identities: BusIdentity[] = [
    service(
      'gateway',
      'HTTP edge: requests; reads invoice PDFs; follows status changes; the operations console (discovery, stream and consumer info, dead letters)',
      {
        // The console's rights are the operator's (for operator-token callers only, see the gateway's
        // `console.ts`): `$SRV` discovery, stream/consumer info, dead-letter reads, redrives and discards.
        publishes: operator.publishes ?? [],
        streamInfo: [dlq],
        requests: [...edgeEndpoints, ...(operator.requests ?? [])],
        listens: [topology.notifications.statusChangedAll],
        objectStores: [{ bucket: topology.objectStores.invoices, write: false }],
        inspects: true,
        messageGets: [dlq],
        messageDeletes: [dlq],
      },
    ),
    service('order-storage', 'Order aggregate (`orders.*`), customers (`customers.*`), read model', {
      serves: serves(
        e.registerCustomer,
        e.getCustomer,
        e.placeOrder,
        e.cancelOrder,
        e.getOrderHistory,
        e.getPaymentToken,
      ),
      orderedReads: [{ stream: topology.stream, filter: topology.filters.orders }],
      messageGets: [topology.stream],
    }),
    service('order-status', 'status projection (KV), status queries, live notifications', {
      serves: serves(e.getOrderStatus, e.listOrders),
      broadcasts: [topology.notifications.statusChangedAll],
      kv: [{ bucket: topology.kv.orderStatus, write: true }],
      // `order.list` scans the bucket's keys (an ordered consumer on the bucket's stream).
      orderedReads: [
        {
          stream: BucketSubjects.kvStream(topology.kv.orderStatus),
          filter: BucketSubjects.kvKeys(topology.kv.orderStatus),
        },
      ],
    }),
    service('payment-processor', 'charges and refunds (`payments.*`); asks order-storage for the PSP token', {
      requests: [e.getPaymentToken.subject],
      messageGets: [topology.stream],
    }),
    service('create-invoice', 'invoices and credit notes (`invoices.*`) and their PDFs', {
      messageGets: [topology.stream],
      objectStores: [{ bucket: topology.objectStores.invoices, write: true }],
    }),
    service('assign-delivery', 'couriers (`deliveries.*`)', { messageGets: [topology.stream] }),
    service('email-notify', 'mails; reads invoice PDFs', {
      objectStores: [{ bucket: topology.objectStores.invoices, write: false }],
    }),
    {
      name: 'provisioner',
      description:
        'creates and updates streams, consumers, the KV bucket and the object store (`orderflow provision`, `up`); answers provisioning requests',
      jetStreamAdmin: true,
      provisioningServes: (Object.keys(consumers) as OrderingService[])
        .filter((name) => consumers[name].length > 0)
        .map((name) => ({ subject: ProvisioningTopology.subject(name), queue: ProvisioningTopology.queue })),
    },
    operator,
  ];
  if (options.chaos) {
    identities.push({
      ...operator,
      name: CHAOS_IDENTITY,
      description:
        'the chaos harness: the operator’s rights, plus forged (poison) events on every event subject',
      publishes: [...(operator.publishes ?? []), ...Object.values(topology.filters)],
    });
  }
  return identities;
}

/** What the provisioning responder may (re)create for each service: its declared durables. */
export function orderingConsumerGrants(topology: OrderingTopology): Map<string, ConsumerGrant[]> {
  const grants = new Map<string, ConsumerGrant[]>();
  for (const [name, bindings] of Object.entries(serviceConsumers(topology))) {
    if (bindings.length === 0) continue;
    grants.set(
      name,
      bindings.flatMap((b) => [
        {
          stream: b.stream,
          name: b.name,
          ...(b.filterSubject !== undefined && { filterSubject: b.filterSubject }),
        },
        {
          stream: DeadLetterTopology.stream,
          name: DeadLetterTopology.redriveDurable(b.stream, b.name),
          filterSubject: DeadLetterTopology.redriveSubject(b.stream, b.name),
        },
      ]),
    );
  }
  return grants;
}
