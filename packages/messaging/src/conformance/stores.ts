// What the key-value and blob conformance suites share: the harness and the error checks.
import assert from 'node:assert/strict';
import { isTransient } from '../errors.ts';
import {
  StoreConflictError,
  StoreErrorCode,
  StoreInvalidNameError,
  StoreNotFoundError,
  StoreUnavailableError,
} from '../ports/errors.ts';

/** Where implementations differ; a case that needs what one lacks is skipped with the reason given. */
export interface StoreFeatures {
  /** `true` when `outage()` can make the backend unreachable; otherwise why it cannot. */
  outage: true | string;
}

/** One empty backend (a fresh bucket space) for one test. */
export interface StoresUnderTest<S> {
  stores: S;
  /** The stores a second process would open on the same data (in memory: `stores` itself). */
  replica: () => Promise<S>;
  /** Makes the backend unreachable, for good, for `stores` and every store opened from it. */
  outage?: () => Promise<void>;
  /** Closes what `open` and `replica` opened and deletes the data. */
  dispose: () => Promise<void>;
}

export interface StoresHarness<S> {
  features: StoreFeatures;
  open(): Promise<StoresUnderTest<S>>;
}

/** Runs `body` on a fresh backend and disposes it afterwards. */
export async function withStores<S>(
  harness: StoresHarness<S>,
  body: (db: StoresUnderTest<S>) => Promise<void>,
): Promise<void> {
  const db = await harness.open();
  try {
    await body(db);
  } finally {
    await db.dispose();
  }
}

/** The skip option of a case that needs an outage. */
export function needsOutage(features: StoreFeatures): { skip?: string } {
  return features.outage === true ? {} : { skip: features.outage };
}

type Where = { store: string; key?: string | undefined };

function check(error: unknown, type: abstract new (...args: never[]) => Error, code: string, where: Where) {
  assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
  assert.equal((error as { code?: unknown }).code, code);
  assert.equal((error as { store?: unknown }).store, where.store);
  if ('key' in where) assert.equal((error as { key?: unknown }).key, where.key);
  return true;
}

export const notFound = (where: Where) => (error: unknown) =>
  check(error, StoreNotFoundError, StoreErrorCode.NotFound, where);

export const conflict = (where: Where & { expectedRevision: number }) => (error: unknown) => {
  check(error, StoreConflictError, StoreErrorCode.Conflict, where);
  assert.equal((error as StoreConflictError).expectedRevision, where.expectedRevision);
  return true;
};

export const invalidName = (where: Where) => (error: unknown) => {
  check(error, StoreInvalidNameError, StoreErrorCode.InvalidName, where);
  assert.equal(isTransient(error), false, 'a bad name is not retryable');
  return true;
};

export const unavailable = (where: Where) => (error: unknown) => {
  check(error, StoreUnavailableError, StoreErrorCode.Unavailable, where);
  assert.ok(isTransient(error), 'an outage is retryable');
  return true;
};

/** Bucket names every implementation must refuse. */
export const badBuckets = ['', 'a b', 'a.b', 'a/b', 'a*', 'a>', 'é', 'x'.repeat(65)];
/** Bucket names at the edges of the rule, made unique by `unique`, which every implementation must accept. */
export const edgeBuckets = (unique: string) => [`A-z-${unique}`, unique.padEnd(64, '-')];
/** Keys and object names every implementation must refuse. */
export const badNames = ['', 'a b', '.a', 'a.', 'a..b', 'a*', 'a>', 'a\nb', 'a\\b', 'ü.pdf', 'x'.repeat(256)];
/** Keys and object names at the edges of the rule, which every implementation must accept. */
export const oddGoodNames = ['a', 'A-Z_0-9', 'a/b/c.pdf', '/lead', 'x=1', 'x'.repeat(255)];
