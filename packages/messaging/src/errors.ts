import { errors } from '@nats-io/nats-core';

/**
 * Errors of the messaging toolkit. Every error has a stable `code`, sets `name`, and chains its `cause`.
 * Handlers classify their own failures by throwing {@link PermanentError} (dead-letter now) or anything
 * else (retried with backoff until `maxDeliver`).
 */
export const ErrorCode = {
  Validation: 'VALIDATION_FAILED',
  Decode: 'DECODE_FAILED',
  UnknownType: 'UNKNOWN_TYPE',
  UnsupportedVersion: 'UNSUPPORTED_VERSION',
  Permanent: 'PERMANENT',
  Publish: 'PUBLISH_FAILED',
  Provisioning: 'PROVISIONING_FAILED',
  ServerFeature: 'SERVER_FEATURE_MISSING',
  Timeout: 'TIMEOUT',
  NoResponders: 'NO_RESPONDERS',
  Remote: 'REMOTE_ERROR',
  Closed: 'CLOSED',
  Config: 'INVALID_CONFIG',
  UnexpectedProducer: 'UNEXPECTED_PRODUCER',
  PublishPreempted: 'PUBLISH_PREEMPTED',
  BrokerUnavailable: 'BROKER_UNAVAILABLE',
  AccessRefused: 'ACCESS_REFUSED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class MessagingError extends Error {
  override name = 'MessagingError';
  constructor(
    readonly code: ErrorCode | (string & {}),
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A process's configuration, read from the environment in its composition root, is invalid: lists
 * every problem at once, so one start shows them all.
 */
export class ConfigError extends MessagingError {
  override name = 'ConfigError';
  constructor(readonly issues: readonly string[]) {
    super(ErrorCode.Config, `invalid configuration: ${issues.join('; ')}`);
  }
}

/** One problem found by schema validation: where (JSON pointer) and what. */
export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

/** A payload does not match its contract's schema. Never retried. */
export class ValidationError extends MessagingError {
  override name = 'ValidationError';
  constructor(
    readonly type: string,
    readonly issues: readonly ValidationIssue[],
  ) {
    super(
      ErrorCode.Validation,
      `${type}: invalid payload: ${issues.map((i) => `${i.path || '/'} ${i.message}`).join('; ')}`,
    );
  }
}

/** A message could not be read as a CloudEvent of a known contract (bad JSON, missing headers…). */
export class DecodeError extends MessagingError {
  override name = 'DecodeError';
  constructor(
    code: typeof ErrorCode.Decode | typeof ErrorCode.UnknownType | typeof ErrorCode.UnsupportedVersion,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** Thrown by a handler for a failure that retrying cannot fix: the message is dead-lettered at once. */
export class PermanentError extends MessagingError {
  override name = 'PermanentError';
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? ErrorCode.Permanent, message, options);
  }
}

/**
 * An event whose producer is not the declared owner of its subject (a `ce-source` other than the
 * owner's, or a type the owner does not publish there). Never retried: it is dead-lettered at once.
 */
export class ProducerError extends PermanentError {
  override name = 'ProducerError';
  readonly subject: string;
  readonly source: string;
  readonly type: string;
  constructor(message: string, facts: { subject: string; source: string; type: string }) {
    super(message, { code: ErrorCode.UnexpectedProducer });
    this.subject = facts.subject;
    this.source = facts.source;
    this.type = facts.type;
  }
}

export class PublishError extends MessagingError {
  override name = 'PublishError';
  constructor(
    readonly subject: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(ErrorCode.Publish, `publish to ${subject} failed: ${message}`, options);
    this.retryable = isBrokerUnavailable(options?.cause);
  }
  /** The server was unreachable (see {@link isBrokerUnavailable}): a retry later may succeed. */
  readonly retryable: boolean;
}

/**
 * The broker refused an operation this identity has no permission for (RabbitMQ `403 ACCESS_REFUSED`:
 * a publish on a routing key its topic permissions do not allow, a queue it may not delete…). Never
 * retried: the permission will not appear by waiting. `resource` is what the broker named.
 */
export class AccessRefusedError extends MessagingError {
  override name = 'AccessRefusedError';
  constructor(
    readonly resource: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(ErrorCode.AccessRefused, message, options);
  }
}

/** A stream or consumer declaration cannot be applied to the server as it is. */
export class ProvisioningError extends MessagingError {
  override name = 'ProvisioningError';
  constructor(
    readonly stream: string,
    message: string,
    options?: { cause?: unknown; consumer?: string },
  ) {
    super(ErrorCode.Provisioning, message, options);
    this.consumer = options?.consumer;
  }
  readonly consumer: string | undefined;
}

export class TimeoutError extends MessagingError {
  override name = 'TimeoutError';
  constructor(
    readonly subject: string,
    readonly timeoutMs: number,
  ) {
    super(ErrorCode.Timeout, `request to ${subject} timed out after ${timeoutMs} ms`);
  }
}

export class NoRespondersError extends MessagingError {
  override name = 'NoRespondersError';
  constructor(readonly subject: string) {
    super(ErrorCode.NoResponders, `no service is listening on ${subject}`);
  }
}

/**
 * An endpoint answered with an error. `code` is the endpoint's own stable code; `status` is the
 * `Nats-Service-Error-Code` (HTTP-like: 400 bad request, 404 not found, 409 conflict, 500 internal).
 */
export class RemoteError extends MessagingError {
  override name = 'RemoteError';
  constructor(
    readonly subject: string,
    readonly status: number,
    code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(code, message);
  }
}

/**
 * Thrown (or any error with `retryable: true`, like `SqlUnavailableError`) for a failure of a
 * dependency that will come back: a database restarting, a provider answering 503. The runtime retries
 * it in place, paced, without using up delivery attempts, so an outage never dead-letters messages.
 */
export class TransientError extends MessagingError {
  override name = 'TransientError';
  readonly retryable = true;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'TRANSIENT', message, options);
  }
}

/**
 * The broker cannot be reached right now (down, restarting, the connection lost), raised by a
 * transport that has no client error of its own for it (`MemoryTransport` while its broker is down).
 * It passes by itself: {@link isBrokerUnavailable} is true for it, so a consumer retries it in place
 * and a {@link PublishError} caused by it is `retryable`.
 */
export class BrokerUnavailableError extends MessagingError {
  override name = 'BrokerUnavailableError';
  constructor(
    readonly broker: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(ErrorCode.BrokerUnavailable, message, options);
  }
}

/** nats.js errors that mean "the server is not there right now" (not "the request is wrong"). */
const UNAVAILABLE_ERRORS = [
  errors.TimeoutError,
  errors.NoRespondersError,
  errors.ConnectionError,
  errors.ClosedConnectionError,
  errors.DrainingConnectionError,
];

/** AMQP reply codes of a connection the broker closed because it is going away (not for a fault of ours). */
const AMQP_GOING_AWAY = new Set([
  320 /* CONNECTION_FORCED: shutdown, operator close */, 541 /* INTERNAL_ERROR */,
]);

/**
 * amqplib's ways of saying the channel or connection is gone: using a closed channel or connection
 * (`IllegalOperationError: Channel closed`), a publish confirm cut off by the close (`channel
 * closed`), the broker closing the connection as it stops (320), the socket dropping. A channel the
 * broker closed for a fault of the caller (403 access refused, 404 not found, 406 precondition failed)
 * is not one: its error carries that code and is not matched here.
 */
function isAmqpClosed(e: Error): boolean {
  if (e.name === 'IllegalOperationError') return /^(Channel|Connection) clos(ed|ing)/.test(e.message);
  if (e.message === 'channel closed' || e.message.startsWith('Socket closed abruptly')) return true;
  const code = (e as { code?: unknown }).code;
  return e.message.startsWith('Connection closed') && typeof code === 'number' && AMQP_GOING_AWAY.has(code);
}

/**
 * True when `error` (or one of its causes) says the broker could not be reached or answer in time: a
 * request timeout, no responders (JetStream leader moving), a lost connection, a JetStream API 503
 * (`temporarily unavailable`), or a RabbitMQ channel or connection that closed under the caller
 * (see `isAmqpClosed`). Such failures pass by themselves (a restart, a cluster failover).
 * Errors are recognised by class, not by name: an HTTP client's timeout is a `TimeoutError` too.
 */
export function isBrokerUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof AccessRefusedError) return false;
    if (UNAVAILABLE_ERRORS.some((type) => e instanceof type)) return true;
    if (e instanceof TimeoutError || e instanceof NoRespondersError) return true;
    if (e instanceof BrokerUnavailableError) return true;
    if (e.name === 'JetStreamApiError' && (e as { status?: unknown }).status === 503) return true;
    if (isAmqpClosed(e)) return true;
  }
  return false;
}

/** True for a dependency outage: {@link TransientError} or any error marked `retryable: true`. */
export function isTransient(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === true;
}

/** True for errors that must not be retried (validation, decode, {@link PermanentError}). */
export function isPermanent(error: unknown): boolean {
  return error instanceof PermanentError || error instanceof ValidationError || error instanceof DecodeError;
}

/** `Nats-Expected-Last-Subject-Sequence` did not match: another writer appended first. */
export class ConcurrencyError extends MessagingError {
  override name = 'ConcurrencyError';
  constructor(
    readonly subject: string,
    readonly expected: number,
    options?: { cause?: unknown },
  ) {
    super(
      'CONCURRENCY_CONFLICT',
      `${subject}: expected last sequence ${expected} but another write came first`,
      options,
    );
  }
}

/**
 * Thrown by an endpoint handler to answer with a typed error. `status` follows HTTP
 * (400 invalid, 404 not found, 409 conflict, 422 rejected by a rule, 503 unavailable) and travels as
 * `Nats-Service-Error-Code`; `code` is the stable machine-readable reason.
 */
export class EndpointError extends MessagingError {
  override name = 'EndpointError';
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(code, message);
  }
}
