export { defineAggregate, fold } from './aggregate.ts';
export type { Aggregate } from './aggregate.ts';
export { AggregateStore, commandHandler } from './aggregate-store.ts';
export type { AggregateStoreOptions, AppendedAggregate, CommandHandlerOptions } from './aggregate-store.ts';
export { CommitContract, defineUpcaster, EventCodec } from './codec.ts';
export { deciderSpec } from './decider-spec.ts';
export type { DeciderThen } from './decider-spec.ts';
export {
  AppendError,
  DomainError,
  EventDecodeError,
  EventStoreError,
  EventStoreErrorCode,
  InvalidAggregateIdError,
  ProjectionError,
  ReadError,
  WrongExpectedVersionError,
} from './errors.ts';
export type { EventDecodeCode } from './errors.ts';
export { JetStreamEventLog } from './event-log.ts';
export { EventForwarder, FORWARDER_COMPONENT, forwarderMigrations } from './forwarder.ts';
export type { EventForwarderOptions } from './forwarder.ts';
export type { JetStreamEventLogOptions } from './event-log.ts';
export { rebuildProjection, startProjection } from './projection.ts';
export type { ProjectionOptions, ProjectionSource, RebuildOptions, RebuildResult } from './projection.ts';
export { KvSnapshotStore } from './snapshots.ts';
export { MemoryEventLog, MemorySnapshotStore } from './memory.ts';
export {
  EVENTSTORE_COMPONENT,
  eventStoreMigrations,
  migrateEventStore,
  SqlEventLog,
  SqlSnapshotStore,
} from './sql-event-log.ts';
export type { SqlEventLogOptions } from './sql-event-log.ts';
export type { KvSnapshotStoreOptions } from './snapshots.ts';
export type {
  AggregateDefinition,
  AppendOptions,
  AppendReceipt,
  CommandHandler,
  CommandOptions,
  CommandResult,
  DecideContext,
  DomainEvent,
  EventLog,
  EventMetadata,
  EventOf,
  LoadedAggregate,
  LogSubscription,
  NewCommit,
  Projection,
  RebuildProgress,
  RecordedEvent,
  RunningProjection,
  Snapshot,
  SnapshotStore,
  StoredCommit,
  Tables,
  Upcaster,
} from './types.ts';
