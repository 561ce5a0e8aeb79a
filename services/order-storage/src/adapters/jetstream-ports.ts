import type { OrderingTopology } from '@orderflow/contracts';
import { JetStreamEventLog } from '@orderflow/eventstore';
import type { NatsTransport } from '@orderflow/messaging';
import type { OrderHistory } from '../ports/order-history.ts';
import { orderAggregate } from './order-aggregate.ts';
import { JetStreamOrderHistory } from './order-history.ts';

/**
 * order-storage's ports on JetStream, as it runs on NATS: the Order aggregate's log is `orders.<id>`
 * in the `ORDERING` stream (appends are the bus's events, no forwarder), and the history is read from
 * that stream with message gets.
 */
export function jetStreamPorts(
  transport: NatsTransport,
  topology: OrderingTopology,
): { eventLog: JetStreamEventLog; history: OrderHistory } {
  return {
    eventLog: new JetStreamEventLog(transport.js, transport.jsm, transport),
    history: new JetStreamOrderHistory({ jsm: transport.jsm, topology, aggregate: orderAggregate(topology) }),
  };
}
