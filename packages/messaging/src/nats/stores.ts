import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm, type ObjectResult, type ObjectStore } from '@nats-io/obj';
import type { BlobStore, BlobStores } from '../ports/blob-store.ts';
import {
  StoreConflictError,
  StoreError,
  StoreNotFoundError,
  StoreUnavailableError,
} from '../ports/errors.ts';
import type { KeyValueEntry, KeyValueStore, KeyValueStores } from '../ports/key-value.ts';
import { checkBucketName, checkItemName, checkRevision } from '../ports/names.ts';

// A failed `Nats-Expected-Last-Subject-Sequence` check: another writer came first.
const WRONG_LAST_SEQUENCE: ReadonlySet<number> = new Set([
  JetStreamApiCodes.StreamWrongLastSequence,
  JetStreamApiCodes.StreamWrongLastSequenceUnknown,
]);

// How long a blob read may go without a chunk before it checks whether the object was replaced.
const STALL_MS = 500;

function isMissingStream(error: unknown): boolean {
  return (
    (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) ||
    (error instanceof Error && /(stream|object store) not found/i.test(error.message))
  );
}

/**
 * Every failure other than "the bucket is not there" is an outage of the store: the connection
 * closed or lost, a timeout, no responders, a 503. The caller learns nothing about the item.
 */
function storeFailure(bucket: string, key: string | undefined, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  if (isMissingStream(error)) return new StoreNotFoundError(bucket, undefined, { cause: error });
  return new StoreUnavailableError(bucket, key, { cause: error });
}

/** {@link BlobStore} on a JetStream object store bucket. */
export class NatsBlobStore implements BlobStore {
  constructor(
    private readonly objects: ObjectStore,
    readonly bucket: string,
  ) {}

  async get(name: string): Promise<Uint8Array> {
    checkItemName(this.bucket, name);
    try {
      for (;;) {
        const object = await this.objects.get(name);
        if (!object) throw new StoreNotFoundError(this.bucket, name);
        const bytes = await this.#read(name, object);
        if (bytes) return bytes;
      }
    } catch (error) {
      throw storeFailure(this.bucket, name, error);
    }
  }

  /**
   * The object's bytes, or `undefined` when it was replaced or deleted while being read. nats.js
   * (`getBlob` too) then waits for ever: a put purges the old chunks, which the reader's consumer,
   * made after it read the old info, never receives. So when no chunk comes for a while, the info is
   * asked again; another `nuid` means the object changed and the caller reads it anew.
   */
  async #read(name: string, object: ObjectResult): Promise<Uint8Array | undefined> {
    object.error.catch(() => undefined); // the stream's read rejects with the same error
    const reader = object.data.getReader();
    const chunks: Uint8Array[] = [];
    let next = reader.read();
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(resolve, STALL_MS, 'stalled')));
      const step = await Promise.race([next, stalled]).finally(() => clearTimeout(timer));
      if (step === 'stalled') {
        const now = await this.objects.info(name);
        if (now?.nuid === object.info.nuid && !now.deleted) continue;
        void reader.cancel();
        return undefined;
      }
      if (step.done) break;
      chunks.push(step.value);
      next = reader.read();
    }
    const failed = await object.error;
    if (failed) throw failed;
    return Buffer.concat(chunks);
  }

  async stat(name: string): Promise<{ size: number } | undefined> {
    checkItemName(this.bucket, name);
    try {
      const info = await this.objects.info(name);
      return info && !info.deleted ? { size: info.size } : undefined;
    } catch (error) {
      throw storeFailure(this.bucket, name, error);
    }
  }

  async put(
    name: string,
    bytes: Uint8Array,
    options: { description?: string } = {},
  ): Promise<{ size: number }> {
    checkItemName(this.bucket, name);
    try {
      const info = await this.objects.putBlob(
        { name, ...(options.description !== undefined && { description: options.description }) },
        bytes,
      );
      return { size: info.size };
    } catch (error) {
      throw storeFailure(this.bucket, name, error);
    }
  }

  async delete(name: string): Promise<void> {
    checkItemName(this.bucket, name);
    try {
      await this.objects.delete(name);
    } catch (error) {
      throw storeFailure(this.bucket, name, error);
    }
  }
}

/** {@link BlobStores} on JetStream object stores of one connection. */
export class NatsBlobStores implements BlobStores {
  readonly #objm: Objm;
  constructor(nc: NatsConnection) {
    this.#objm = new Objm(nc);
  }

  /** Binds to an existing bucket: `StoreNotFoundError` when there is none, `StoreUnavailableError` on an outage. */
  async open(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    try {
      return new NatsBlobStore(await this.#objm.open(bucket), bucket);
    } catch (error) {
      throw storeFailure(bucket, undefined, error);
    }
  }

  async create(
    bucket: string,
    options: { replicas?: number; description?: string } = {},
  ): Promise<BlobStore> {
    checkBucketName(bucket);
    try {
      const objects = await this.#objm.create(bucket, {
        replicas: options.replicas ?? 1,
        ...(options.description !== undefined && { description: options.description }),
      });
      return new NatsBlobStore(objects, bucket);
    } catch (error) {
      throw new StoreUnavailableError(bucket, undefined, { cause: error });
    }
  }
}

function isConflict(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return WRONG_LAST_SEQUENCE.has(error.code);
  return error instanceof Error && /wrong last sequence/i.test(error.message);
}

/** {@link KeyValueStore} on a JetStream KV bucket. */
export class NatsKeyValueStore implements KeyValueStore {
  constructor(
    private readonly kv: KV,
    readonly bucket: string,
  ) {}

  async get(key: string): Promise<KeyValueEntry> {
    checkItemName(this.bucket, key);
    let entry;
    try {
      entry = await this.kv.get(key);
    } catch (error) {
      throw storeFailure(this.bucket, key, error);
    }
    if (!entry || entry.operation !== 'PUT') throw new StoreNotFoundError(this.bucket, key);
    return { key, value: entry.value, revision: entry.revision };
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    checkItemName(this.bucket, key);
    try {
      return await this.kv.create(key, value);
    } catch (error) {
      if (isConflict(error)) throw new StoreConflictError(this.bucket, key, 0, { cause: error });
      throw storeFailure(this.bucket, key, error);
    }
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    checkItemName(this.bucket, key);
    checkRevision(this.bucket, key, revision);
    try {
      return await this.kv.update(key, value, revision);
    } catch (error) {
      if (isConflict(error)) throw new StoreConflictError(this.bucket, key, revision, { cause: error });
      throw storeFailure(this.bucket, key, error);
    }
  }

  async keys(): Promise<string[]> {
    try {
      const keys: string[] = [];
      for await (const key of await this.kv.keys()) keys.push(key);
      return keys;
    } catch (error) {
      throw storeFailure(this.bucket, undefined, error);
    }
  }
}

/** {@link KeyValueStores} on JetStream KV buckets of one connection. */
export class NatsKeyValueStores implements KeyValueStores {
  readonly #kvm: Kvm;
  constructor(nc: NatsConnection) {
    this.#kvm = new Kvm(nc);
  }

  async create(
    bucket: string,
    options: { replicas?: number; history?: number; description?: string } = {},
  ): Promise<KeyValueStore> {
    checkBucketName(bucket);
    try {
      const kv = await this.#kvm.create(bucket, {
        history: options.history ?? 1,
        replicas: options.replicas ?? 1,
        ...(options.description !== undefined && { description: options.description }),
      });
      return new NatsKeyValueStore(kv, bucket);
    } catch (error) {
      throw new StoreUnavailableError(bucket, undefined, { cause: error });
    }
  }
}
