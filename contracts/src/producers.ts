import {
  NatsTransport,
  type EventPublisher,
  type MessageContract,
  type PayloadOf,
  type PublishOptions,
  type PublishReceipt,
} from '@orderflow/messaging';
import { ContractsError } from './errors.ts';
import { EVENT_PRODUCERS, EVENT_SOURCES, sourceOf, type OrderingService } from './topology.ts';

type NatsConnection = Parameters<typeof NatsTransport.create>[0];

/** The service that publishes `contract` (any version of it), from {@link EVENT_PRODUCERS}. */
export function producerOf(contract: MessageContract): OrderingService {
  for (const source of EVENT_SOURCES) {
    const { service, events } = EVENT_PRODUCERS[source];
    if (events.some((e: MessageContract) => e.name === contract.name)) return service;
  }
  throw new ContractsError('UNKNOWN_EVENT', `${contract.type} is not an event of the ordering context`);
}

/**
 * A publisher that sends every ordering event as its owner would (`ce-source` of
 * {@link producerOf}): for tests and tools that stand in for the producing services.
 */
export class OwnerPublisher implements Pick<EventPublisher, 'publish'> {
  readonly #transports = new Map<OrderingService, Promise<NatsTransport>>();

  constructor(private readonly nc: NatsConnection) {}

  async publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: PublishOptions,
  ): Promise<PublishReceipt> {
    const service = producerOf(contract);
    let transport = this.#transports.get(service);
    if (!transport) {
      transport = NatsTransport.create(this.nc, { source: sourceOf(service) });
      this.#transports.set(service, transport);
    }
    return (await transport).publish(contract, data, options);
  }

  async close(): Promise<void> {
    for (const transport of this.#transports.values()) await (await transport).close();
    this.#transports.clear();
  }
}
