export { jetStreamPorts } from './adapters/jetstream-ports.ts';
export { orderAggregate } from './adapters/order-aggregate.ts';
export { JetStreamOrderHistory, readOrderHistory } from './adapters/order-history.ts';
export { SqlOrderHistory } from './adapters/sql-order-history.ts';
export { ORDER_FORWARDER, sqlPorts } from './adapters/sql-ports.ts';
export { orderSummaries, orderSummary } from './adapters/read-model.ts';
export type { OrderReadModelTables, OrderSummary } from './adapters/read-model.ts';
export { OrderStorageDb, orderStorageMigrations } from './adapters/sql-db.ts';
export type { Customer, KeyClaim, OrderFact, OrderFacts } from './adapters/sql-db.ts';
export { startOrderStorage } from './app.ts';
export type { OrderStorage, OrderStorageContext, OrderStorageOptions } from './app.ts';
export { ownerOf } from './ports/order-history.ts';
export type {
  HistoryEntry,
  OrderHistory,
  OrderHistoryRead,
  OrderHistoryReader,
  OrderHistoryRecorder,
  SkippedMessage,
} from './ports/order-history.ts';
export { configFromEnv, EventLogKind } from './config.ts';
export type { OrderStorageConfig } from './config.ts';
export { requestFingerprint } from './domain/fingerprint.ts';
export {
  decide,
  evolve,
  initialOrderState,
  ORDER_EVENT_CONTRACTS,
  orderDefinition,
  statusOf,
} from './domain/order.ts';
export type { OrderCommand, OrderEvent, OrderLifecycle, OrderState } from './domain/order.ts';
