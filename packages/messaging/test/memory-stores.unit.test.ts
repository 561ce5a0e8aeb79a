// The storage conformance suites against the in-memory stores.
import { blobStoreConformance } from '../src/conformance/blob-store.ts';
import { keyValueConformance } from '../src/conformance/key-value.ts';
import { MemoryBlobStores, MemoryKeyValueStores } from '../src/mod.ts';

const noOutage = 'in memory: there is no backend to lose';
const inMemory = <S>(stores: S) => ({
  stores,
  replica: async () => stores,
  dispose: async () => undefined,
});

keyValueConformance('in memory', {
  features: { outage: noOutage },
  open: async () => inMemory(new MemoryKeyValueStores()),
});

blobStoreConformance('in memory', {
  features: { outage: noOutage },
  open: async () => inMemory(new MemoryBlobStores()),
});
