import type { OrderingTopology } from '@orderflow/contracts';
import { EventCodec, type Aggregate } from '@orderflow/eventstore';
import { orderDefinition, type OrderCommand, type OrderEvent, type OrderState } from '../domain/order.ts';

/**
 * The Order aggregate bound to a topology: stream `ORDERING[_NS]`, one subject per order from
 * `topology.subjects.order(id)`.
 *
 * Built here rather than with `defineAggregate`, which accepts only a one-token subject prefix: with a
 * namespace the orders live under `<namespace>.orders.<id>`.
 */
export function orderAggregate(topology: OrderingTopology): Aggregate<OrderState, OrderCommand, OrderEvent> {
  const prefix = topology.filters.orders.slice(0, -1); // `[<ns>.]orders.`
  const definition = orderDefinition(topology.stream, prefix.slice(0, -1));
  const stream = topology.streams[0];
  if (!stream) throw new Error('the ordering topology declares no stream');
  return {
    ...definition,
    codec: new EventCodec<OrderEvent>(definition.events, definition.upcasters, {
      producer: definition.producer,
    }),
    subjects: topology.filters.orders,
    subject: (id) => topology.subjects.order(id),
    idOf: (subject) => (subject.startsWith(prefix) ? subject.slice(prefix.length) : subject),
    streamDeclaration: () => stream,
  };
}
