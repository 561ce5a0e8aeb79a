export { deliveryMigrations, SqlDispatch } from './adapters/sql-dispatch.ts';
export type { Assignment, Release } from './adapters/sql-dispatch.ts';
export { assignDeliveryConsumer, startAssignDelivery } from './app.ts';
export type { AssignDeliveryOptions } from './app.ts';
export { configFromEnv } from './config.ts';
export type { AssignDeliveryConfig } from './config.ts';
export {
  candidates,
  decideAssign,
  DEFAULT_COURIERS,
  poolProblems,
  unavailableReason,
} from './domain/couriers.ts';
export type { AssignDecision, Courier, CourierLoad } from './domain/couriers.ts';
export { AssignDeliveryError, DeliveryErrorCode } from './errors.ts';
