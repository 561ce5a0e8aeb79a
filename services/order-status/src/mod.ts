export { KvStatusStore } from './adapters/kv-status-store.ts';
export type { StatusStore, VersionedRecord } from './adapters/kv-status-store.ts';
export { getOrderStatus, orderStatusConsumer, startOrderStatus } from './app.ts';
export type { OrderStatusOptions } from './app.ts';
export { configFromEnv } from './config.ts';
export type { OrderStatusConfig } from './config.ts';
export { applyFact, factOf, project } from './domain/status.ts';
export type { Applied, AppliedFact, Fact, StatusRecord } from './domain/status.ts';
export { OrderStatusError, StatusErrorCode } from './errors.ts';
