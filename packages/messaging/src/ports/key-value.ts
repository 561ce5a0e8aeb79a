/** One value of a {@link KeyValueStore} with the revision a compare-and-set write names. */
export interface KeyValueEntry {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the entry: a positive integer that increases with every write of the bucket (not by one). */
  readonly revision: number;
}

/**
 * The key-value port: one current value per key, with compare-and-set writes. Services depend on this
 * interface; the composition root picks the implementation: JetStream KV (`NatsKeyValueStores`),
 * SQL (`SqlKeyValueStores` in `@orderflow/sql`) or in memory (`MemoryKeyValueStores`, for tests).
 * Every implementation passes `conformance/key-value.ts`.
 *
 * Keys are 1–255 ASCII letters, digits and `_ - / = .` (not starting or ending with `.`, no `..`);
 * any other key rejects with `StoreInvalidNameError` (see `checkItemName`). Values are bytes, copied
 * on write and on read (empty is allowed).
 *
 * Errors: a missing key rejects `get` with `StoreNotFoundError`; a write whose revision is not the
 * entry's rejects with `StoreConflictError` and writes nothing; a store that cannot be asked rejects
 * with `StoreUnavailableError` — never "not found".
 */
export interface KeyValueStore {
  readonly bucket: string;
  get(key: string): Promise<KeyValueEntry>;
  /** Writes only if the key has no value; `StoreConflictError` otherwise. Resolves with the new revision. */
  create(key: string, value: Uint8Array): Promise<number>;
  /**
   * Writes only if the key is at `revision`; `StoreConflictError` otherwise (also for a missing key, or
   * a revision that is not a positive integer). Of writers racing from one revision, exactly one wins.
   * Resolves with the new revision.
   */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
  /** Every key with a value, in no particular order (a scan: for consoles, not for hot paths). */
  keys(): Promise<string[]>;
}

/**
 * Opens key-value buckets. `create` makes the bucket if needed and binds to it: idempotent, keeps what
 * the bucket holds, and replicas may call it at the same moment. Bucket names are 1–64 ASCII letters,
 * digits, `_` and `-` (`StoreInvalidNameError` otherwise). `replicas`, `history` and `description`
 * are hints that implementations without them ignore.
 */
export interface KeyValueStores {
  create(
    bucket: string,
    options?: { replicas?: number; history?: number; description?: string },
  ): Promise<KeyValueStore>;
}
