import { transportConformance } from '../src/conformance/transport.ts';
import { MemoryBroker } from '../src/memory/broker.ts';
import { MemoryTransport } from '../src/memory/transport.ts';
import type { Transport } from '../src/transport.ts';

// One broker for the suite: each `connect()` is another process on it.
const broker = new MemoryBroker();

transportConformance('in-memory', () => ({
  features: { deduplication: true },
  brokerOutage: () => broker.unavailable('publish to orders.1'),
  async connect() {
    return new MemoryTransport(broker, { source: 'orderflow/conformance' });
  },
  async crash(transport: Transport) {
    (transport as MemoryTransport).crash();
  },
  async close(transport: Transport) {
    await transport.close({ deadlineMs: 1_000 });
  },
}));
