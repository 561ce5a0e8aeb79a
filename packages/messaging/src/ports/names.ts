import { StoreConflictError, StoreInvalidNameError } from './errors.ts';

// The portable rule is JetStream's (KV keys become subject tokens, buckets stream names), which the
// other implementations can all keep: a file name, a SQL text, a map key.
// A bucket is a stream (`KV_<bucket>`) and a directory of the file store: both within a file name.
const MAX_BUCKET_LENGTH = 64;
const MAX_LENGTH = 255;
const BUCKET = /^[-\w]+$/;
const ITEM = /^[-/=.\w]+$/;

/**
 * Rejects a bucket name other than 1–64 ASCII letters, digits, `_` and `-` with
 * {@link StoreInvalidNameError}. Every storage implementation calls it before touching its backend.
 */
export function checkBucketName(bucket: string): void {
  if (bucket.length === 0 || bucket.length > MAX_BUCKET_LENGTH) {
    throw new StoreInvalidNameError(bucket, undefined, `1 to ${MAX_BUCKET_LENGTH} characters`);
  }
  if (!BUCKET.test(bucket)) throw new StoreInvalidNameError(bucket, undefined, 'only A-Z a-z 0-9 _ -');
}

/**
 * Rejects a key (or object name) other than 1–255 ASCII letters, digits and `_ - / = .`, not starting
 * or ending with `.` and without `..`, with {@link StoreInvalidNameError}.
 */
export function checkItemName(bucket: string, name: string): void {
  if (name.length === 0 || name.length > MAX_LENGTH) {
    throw new StoreInvalidNameError(bucket, name, `1 to ${MAX_LENGTH} characters`);
  }
  if (!ITEM.test(name)) throw new StoreInvalidNameError(bucket, name, 'only A-Z a-z 0-9 _ - / = .');
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) {
    throw new StoreInvalidNameError(bucket, name, 'no leading, trailing or doubled "."');
  }
}

/** Revisions are positive integers: a compare-and-set naming anything else cannot match an entry. */
export function checkRevision(bucket: string, key: string, revision: number): void {
  if (!Number.isSafeInteger(revision) || revision < 1) throw new StoreConflictError(bucket, key, revision);
}
