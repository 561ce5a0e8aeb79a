import { MessagingError } from '../errors.ts';

/** Codes of the storage ports' errors (key-value, blob, dead-letter store). */
export const StoreErrorCode = {
  NotFound: 'STORE_NOT_FOUND',
  Unavailable: 'STORE_UNAVAILABLE',
  Conflict: 'STORE_CONFLICT',
  InvalidName: 'STORE_INVALID_NAME',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

/** Base of the storage ports' errors: carries the store (bucket) and the key or name asked for. */
export class StoreError extends MessagingError {
  override name = 'StoreError';
  constructor(
    code: StoreErrorCode,
    readonly store: string,
    readonly key: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The item (or its bucket) does not exist. A definite answer: asking again gives the same until it is written. */
export class StoreNotFoundError extends StoreError {
  override name = 'StoreNotFoundError';
  constructor(store: string, key: string | undefined, options?: { cause?: unknown }) {
    super(StoreErrorCode.NotFound, store, key, `${store}: no ${key ?? 'bucket'}`, options);
  }
}

/**
 * The store could not be asked (server down, connection closed, timeout): nothing is known about the
 * item. Never means "not found"; a retry later may succeed (`retryable` is true, see `isTransient`).
 */
export class StoreUnavailableError extends StoreError {
  override name = 'StoreUnavailableError';
  readonly retryable = true;
  constructor(store: string, key: string | undefined, options?: { cause?: unknown }) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(StoreErrorCode.Unavailable, store, key, `${store} is unavailable${reason}`, options);
  }
}

/** A compare-and-set write found another revision than the one it named. */
export class StoreConflictError extends StoreError {
  override name = 'StoreConflictError';
  constructor(
    store: string,
    key: string,
    readonly expectedRevision: number,
    options?: { cause?: unknown },
  ) {
    super(
      StoreErrorCode.Conflict,
      store,
      key,
      `${store}: ${key} is not at revision ${expectedRevision}`,
      options,
    );
  }
}

/**
 * A bucket, key or object name outside the portable rule (see `checkBucketName`, `checkItemName`).
 * Bad input, not an outage: asking again with the same name fails the same way.
 */
export class StoreInvalidNameError extends StoreError {
  override name = 'StoreInvalidNameError';
  constructor(store: string, key: string | undefined, reason: string) {
    const what = key === undefined ? `bucket name ${JSON.stringify(store)}` : `name ${JSON.stringify(key)}`;
    super(StoreErrorCode.InvalidName, store, key, `invalid ${what}: ${reason}`);
  }
}
