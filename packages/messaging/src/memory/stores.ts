import type { BlobStore, BlobStores } from '../ports/blob-store.ts';
import { StoreConflictError, StoreNotFoundError } from '../ports/errors.ts';
import type { KeyValueEntry, KeyValueStore, KeyValueStores } from '../ports/key-value.ts';
import { checkBucketName, checkItemName, checkRevision } from '../ports/names.ts';

/** The bucket's map, made empty on first use. */
function bucketOf<T>(buckets: Map<string, Map<string, T>>, bucket: string): Map<string, T> {
  let items = buckets.get(bucket);
  if (!items) buckets.set(bucket, (items = new Map<string, T>()));
  return items;
}

/**
 * {@link KeyValueStores} in this process's memory, for unit tests: the stores created from one
 * instance share its buckets; nothing outlives the process, and it has no outage.
 */
export class MemoryKeyValueStores implements KeyValueStores {
  readonly #buckets = new Map<string, Map<string, { value: Uint8Array; revision: number }>>();
  #revision = 0;

  async create(bucket: string): Promise<KeyValueStore> {
    checkBucketName(bucket);
    return new MemoryKeyValueStore(bucket, bucketOf(this.#buckets, bucket), () => ++this.#revision);
  }
}

class MemoryKeyValueStore implements KeyValueStore {
  constructor(
    readonly bucket: string,
    private readonly entries: Map<string, { value: Uint8Array; revision: number }>,
    private readonly nextRevision: () => number,
  ) {}

  async get(key: string): Promise<KeyValueEntry> {
    checkItemName(this.bucket, key);
    const entry = this.entries.get(key);
    if (!entry) throw new StoreNotFoundError(this.bucket, key);
    return { key, value: entry.value.slice(), revision: entry.revision };
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    checkItemName(this.bucket, key);
    if (this.entries.has(key)) throw new StoreConflictError(this.bucket, key, 0);
    return this.#write(key, value);
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    checkItemName(this.bucket, key);
    checkRevision(this.bucket, key, revision);
    if (this.entries.get(key)?.revision !== revision)
      throw new StoreConflictError(this.bucket, key, revision);
    return this.#write(key, value);
  }

  async keys(): Promise<string[]> {
    return [...this.entries.keys()];
  }

  #write(key: string, value: Uint8Array): number {
    const revision = this.nextRevision();
    this.entries.set(key, { value: value.slice(), revision });
    return revision;
  }
}

/**
 * {@link BlobStores} in this process's memory, for unit tests: the stores opened from one instance
 * share its buckets; nothing outlives the process, and it has no outage.
 */
export class MemoryBlobStores implements BlobStores {
  readonly #buckets = new Map<string, Map<string, Uint8Array>>();

  async open(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    const objects = this.#buckets.get(bucket);
    if (!objects) throw new StoreNotFoundError(bucket, undefined);
    return new MemoryBlobStore(bucket, objects);
  }

  async create(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    return new MemoryBlobStore(bucket, bucketOf(this.#buckets, bucket));
  }
}

class MemoryBlobStore implements BlobStore {
  constructor(
    readonly bucket: string,
    private readonly objects: Map<string, Uint8Array>,
  ) {}

  async get(name: string): Promise<Uint8Array> {
    checkItemName(this.bucket, name);
    const bytes = this.objects.get(name);
    if (!bytes) throw new StoreNotFoundError(this.bucket, name);
    return bytes.slice();
  }

  async stat(name: string): Promise<{ size: number } | undefined> {
    checkItemName(this.bucket, name);
    const bytes = this.objects.get(name);
    return bytes && { size: bytes.length };
  }

  async put(name: string, bytes: Uint8Array): Promise<{ size: number }> {
    checkItemName(this.bucket, name);
    this.objects.set(name, bytes.slice());
    return { size: bytes.length };
  }

  async delete(name: string): Promise<void> {
    checkItemName(this.bucket, name);
    this.objects.delete(name);
  }
}
