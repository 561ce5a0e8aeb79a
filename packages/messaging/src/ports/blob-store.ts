/**
 * The blob port: named byte objects in one bucket (invoice PDFs), written whole and read whole.
 * Services depend on this interface; the composition root picks the implementation: JetStream object
 * store (`NatsBlobStores`), SQL (`SqlBlobStores` in `@orderflow/sql`), a directory (`FileBlobStores`)
 * or in memory (`MemoryBlobStores`, for tests). Every implementation passes `conformance/blob-store.ts`.
 *
 * Object names follow the key rule of the key-value port (1–255 ASCII letters, digits and
 * `_ - / = .`, no leading, trailing or doubled `.`); any other name rejects with
 * `StoreInvalidNameError`. A reader sees an object whole or not at all, never a part of a write.
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
  /**
   * Stores `bytes` under `name` (replacing any object of that name); resolves with the size stored.
   * `description` is kept where the implementation keeps one (JetStream).
   */
  put(name: string, bytes: Uint8Array, options?: { description?: string }): Promise<{ size: number }>;
  /** Removes the object; resolves also when there was none. */
  delete(name: string): Promise<void>;
}

/**
 * Opens blob buckets: `open` binds to an existing bucket (`StoreNotFoundError` when there is none),
 * `create` makes it if needed (idempotent, keeps what it holds; replicas may call it at once). Bucket
 * names are 1–64 ASCII letters, digits, `_` and `-`. `replicas` and `description` are hints that
 * implementations without them ignore.
 */
export interface BlobStores {
  open(bucket: string): Promise<BlobStore>;
  create(bucket: string, options?: { replicas?: number; description?: string }): Promise<BlobStore>;
}
