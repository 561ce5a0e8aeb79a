/**
 * The blob port: named, immutable-once-written byte objects in one bucket (invoice PDFs). Services
 * depend on this interface; the composition root picks the implementation (JetStream object store:
 * `NatsBlobStore`).
 *
 * Errors: a missing object (or bucket) rejects with `StoreNotFoundError`; a store that cannot be
 * asked rejects with `StoreUnavailableError`. An outage is never reported as "not found".
 */
export interface BlobStore {
  /** Name of the bucket (as a `PdfLocation` names it). */
  readonly bucket: string;
  /** The object's bytes. */
  get(name: string): Promise<Uint8Array>;
  /** The object's size in bytes, or `undefined` when there is none (an outage still rejects). */
  stat(name: string): Promise<{ size: number } | undefined>;
  /** Stores `bytes` under `name` (replacing any object of that name); resolves with the size stored. */
  put(name: string, bytes: Uint8Array, options?: { description?: string }): Promise<{ size: number }>;
}

/** Opens blob buckets: `open` binds to an existing bucket, `create` makes it if needed (idempotent). */
export interface BlobStores {
  open(bucket: string): Promise<BlobStore>;
  create(bucket: string, options?: { replicas?: number; description?: string }): Promise<BlobStore>;
}
