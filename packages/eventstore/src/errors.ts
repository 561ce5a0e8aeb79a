import { isBrokerUnavailable } from '@orderflow/messaging';
import { isRetryableSqlError } from '@orderflow/sql';

/** The log's backend was unreachable: NATS (a restart, a failover) or the SQL database. */
const isOutage = (cause: unknown): boolean => isBrokerUnavailable(cause) || isRetryableSqlError(cause);

/**
 * Errors of the event store. Every error has a stable `code`, sets `name`, and chains its `cause`.
 * Decisions rejected by the domain are {@link DomainError}s: they are final and never retried.
 */
export const EventStoreErrorCode = {
  Config: 'INVALID_CONFIG',
  InvalidAggregateId: 'INVALID_AGGREGATE_ID',
  WrongExpectedVersion: 'WRONG_EXPECTED_VERSION',
  UnknownEventType: 'UNKNOWN_EVENT_TYPE',
  UndecodableEvent: 'UNDECODABLE_EVENT',
  InvalidEvent: 'INVALID_EVENT',
  ForeignProducer: 'FOREIGN_PRODUCER',
  Append: 'APPEND_FAILED',
  Read: 'READ_FAILED',
  Projection: 'PROJECTION_FAILED',
} as const;
export type EventStoreErrorCode = (typeof EventStoreErrorCode)[keyof typeof EventStoreErrorCode];

export class EventStoreError extends Error {
  override name = 'EventStoreError';
  constructor(
    readonly code: EventStoreErrorCode | (string & {}),
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Thrown by an aggregate's `decide` to reject a command (a business rule said no). `code` is the
 * aggregate's own stable reason, e.g. `INSUFFICIENT_FUNDS`. Command handlers never retry it.
 */
export class DomainError extends EventStoreError {
  override name = 'DomainError';
  constructor(code: string, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(code, message, options);
    this.details = options?.details;
  }
  readonly details: unknown;
}

/** An aggregate id that cannot be a NATS subject token or a KV key. */
export class InvalidAggregateIdError extends EventStoreError {
  override name = 'InvalidAggregateIdError';
  constructor(readonly aggregateId: string) {
    super(
      EventStoreErrorCode.InvalidAggregateId,
      `aggregate id "${aggregateId}" must match [A-Za-z0-9_-]{1,128}`,
    );
  }
}

/**
 * Another writer appended to the aggregate after it was loaded (`Nats-Expected-Last-Subject-Sequence`
 * did not match). From a command handler it means every attempt lost the race (`attempts`).
 */
export class WrongExpectedVersionError extends EventStoreError {
  override name = 'WrongExpectedVersionError';
  constructor(
    readonly subject: string,
    readonly expectedVersion: number,
    options?: { cause?: unknown; attempts?: number },
  ) {
    super(
      EventStoreErrorCode.WrongExpectedVersion,
      options?.attempts === undefined
        ? `${subject}: expected version ${expectedVersion} but another write came first`
        : `${subject}: gave up after ${options.attempts} attempts lost to concurrent writers`,
      options,
    );
    this.attempts = options?.attempts;
  }
  readonly attempts: number | undefined;
}

/** What is wrong with a stored event; the `code` of an {@link EventDecodeError}. */
export type EventDecodeCode =
  | typeof EventStoreErrorCode.UnknownEventType
  | typeof EventStoreErrorCode.UndecodableEvent
  | typeof EventStoreErrorCode.InvalidEvent
  | typeof EventStoreErrorCode.ForeignProducer;

/**
 * A message in the log cannot be read as an event of the aggregate: an unknown `ce-type`, a message
 * that is not a CloudEvent or not JSON, a payload its contract rejects, or a `ce-source` other than
 * the aggregate's producer. Names where it sits.
 */
export class EventDecodeError extends EventStoreError {
  override name = 'EventDecodeError';
  constructor(
    code: EventDecodeCode,
    readonly stream: string,
    readonly subject: string,
    readonly sequence: number,
    reason: string,
    options?: { cause?: unknown; type?: string },
  ) {
    super(code, `${stream} ${subject} #${sequence}: ${reason}`, options);
    this.type = options?.type;
  }
  /** `ce-type` of the message, when it had one. */
  readonly type: string | undefined;
}

/** Storing a commit failed for a reason other than a version conflict (after the publisher's retries). */
export class AppendError extends EventStoreError {
  override name = 'AppendError';
  constructor(
    readonly subject: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(EventStoreErrorCode.Append, `append to ${subject} failed: ${message}`, options);
    this.retryable = isOutage(options?.cause);
  }
  /** The backend was unreachable (NATS restart or failover, database down): handlers retry it as an outage. */
  readonly retryable: boolean;
}

/** Reading the log failed (stream missing, connection lost, consumer deleted). */
export class ReadError extends EventStoreError {
  override name = 'ReadError';
  constructor(
    readonly stream: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(EventStoreErrorCode.Read, `read from ${stream} failed: ${message}`, options);
    this.retryable = isOutage(options?.cause);
  }
  /** The backend was unreachable (NATS restart or failover, database down): handlers retry it as an outage. */
  readonly retryable: boolean;
}

/** A projection stopped: its handler kept failing, or the log holds an event it cannot decode. */
export class ProjectionError extends EventStoreError {
  override name = 'ProjectionError';
  constructor(
    readonly projection: string,
    readonly sequence: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(
      EventStoreErrorCode.Projection,
      `projection ${projection}${sequence === undefined ? '' : ` at #${sequence}`}: ${message}`,
      options,
    );
  }
}
