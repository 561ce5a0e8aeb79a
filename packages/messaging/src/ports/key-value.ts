/** One value of a {@link KeyValueStore} with the revision a compare-and-set write names. */
export interface KeyValueEntry {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the entry; increases with every write of the bucket. */
  readonly revision: number;
}

/**
 * The key-value port: one current value per key, with compare-and-set writes. Services depend on this
 * interface; the composition root picks the implementation (JetStream KV: `NatsKeyValueStore`).
 *
 * Errors: a missing (or deleted) key rejects `get` with `StoreNotFoundError`; a write whose revision
 * is not the entry's rejects with `StoreConflictError`; a store that cannot be asked rejects with
 * `StoreUnavailableError` — never "not found".
 */
export interface KeyValueStore {
  readonly bucket: string;
  get(key: string): Promise<KeyValueEntry>;
  /** Writes only if the key has no value; `StoreConflictError` otherwise. Resolves with the new revision. */
  create(key: string, value: Uint8Array): Promise<number>;
  /** Writes only if the key is at `revision`; `StoreConflictError` otherwise. Resolves with the new revision. */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
}

/** Opens key-value buckets; `create` makes the bucket if needed (idempotent, replicas may start at once). */
export interface KeyValueStores {
  create(
    bucket: string,
    options?: { replicas?: number; history?: number; description?: string },
  ): Promise<KeyValueStore>;
}
