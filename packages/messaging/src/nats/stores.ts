import { createHash } from 'node:crypto';
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type DirectStreamAPI,
  type JetStreamClient,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { headers as natsHeaders, nuid, type NatsConnection } from '@nats-io/nats-core';
import { Base64UrlPaddedCodec, Objm, type ObjectResult, type ObjectStore } from '@nats-io/obj';
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

/** The part of an object store's meta record (`$O.<bucket>.M.<name>`) that a direct read uses. */
interface ObjectMeta {
  size?: unknown;
  chunks?: unknown;
  nuid?: unknown;
  digest?: unknown;
  deleted?: unknown;
  options?: { link?: unknown };
}

const DIGEST_PREFIX = 'SHA-256=';
/** Chunk size of a put: nats.js's default, below the server's default 1 MiB max payload. */
const CHUNK_BYTES = 128 * 1024;

/**
 * {@link BlobStore} on a JetStream object store bucket.
 *
 * `get` first reads with JetStream direct gets (object store streams allow them): the meta record as
 * the last message on its subject, then each chunk as the next message on the object's chunk
 * subject, and returns the bytes only when their size and SHA-256 digest match the record. nats.js's
 * own `getBlob` creates an ephemeral ordered push consumer per read (a consumer-create API call with
 * its advisories, flow control, a consumer the server removes later), which costs the server far more
 * than the object's one or two messages. Whatever the direct read cannot settle — no record (a
 * replica may lag behind the leader), a deleted or linked object, a missing chunk, another digest
 * form, any error — is read again through nats.js, which gives the answer and the errors it always
 * gave.
 */
export class NatsBlobStore implements BlobStore {
  readonly #stream: string;

  constructor(
    private readonly objects: ObjectStore,
    readonly bucket: string,
    private readonly direct?: () => Promise<DirectStreamAPI>,
    private readonly js?: JetStreamClient,
  ) {
    this.#stream = `OBJ_${bucket}`;
  }

  /** The object's bytes by direct gets, or `undefined` when that cannot settle it (see the class). */
  async #directGet(name: string): Promise<Uint8Array | undefined> {
    if (!this.direct) return undefined;
    try {
      const direct = await this.direct();
      const subject = `$O.${this.bucket}.M.${Base64UrlPaddedCodec.encode(name)}`;
      const record = await direct.getMessage(this.#stream, { last_by_subj: subject });
      if (record === null) return undefined;
      const meta = record.json<ObjectMeta>();
      if (
        typeof meta !== 'object' ||
        meta === null ||
        meta.deleted === true ||
        meta.options?.link !== undefined ||
        typeof meta.size !== 'number' ||
        typeof meta.chunks !== 'number' ||
        typeof meta.nuid !== 'string' ||
        typeof meta.digest !== 'string' ||
        !meta.digest.startsWith(DIGEST_PREFIX)
      ) {
        return undefined;
      }
      const parts: Uint8Array[] = [];
      const chunkSubject = `$O.${this.bucket}.C.${meta.nuid}`;
      let seq = 0;
      for (let i = 0; i < meta.chunks; i++) {
        const chunk = await direct.getMessage(this.#stream, { seq: seq + 1, next_by_subj: chunkSubject });
        if (chunk === null) return undefined;
        parts.push(chunk.data);
        seq = chunk.seq;
      }
      const bytes = Buffer.concat(parts);
      const digest = createHash('sha256').update(bytes).digest('base64url');
      const expected = meta.digest.slice(DIGEST_PREFIX.length).replace(/=+$/, '');
      if (bytes.length !== meta.size || digest !== expected) return undefined;
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    } catch {
      return undefined;
    }
  }

  async get(name: string): Promise<Uint8Array> {
    checkItemName(this.bucket, name);
    const direct = await this.#directGet(name);
    if (direct) return direct;
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

  /**
   * Writes the chunks, then the object's record (a rollup of its subject), in nats.js's object-store
   * format, so nats.js and `get` read it. Unlike nats.js's `putBlob` it never purges: nats.js purges
   * the chunks of the object it replaces and, after a failed put, the chunks it wrote, and a writer
   * holds no purge right on the bus (a retried put after a lost ack, or a node that failed mid-put,
   * was a permission violation). Such chunks stay in the stream, unreferenced, until its limits drop
   * them; a replaced object is rare (create-invoice writes each PDF once).
   */
  async put(
    name: string,
    bytes: Uint8Array,
    options: { description?: string } = {},
  ): Promise<{ size: number }> {
    checkItemName(this.bucket, name);
    try {
      if (!this.js) {
        const info = await this.objects.putBlob(
          { name, ...(options.description !== undefined && { description: options.description }) },
          bytes,
        );
        return { size: info.size };
      }
      const id = nuid.next();
      const chunkSubject = `$O.${this.bucket}.C.${id}`;
      let chunks = 0;
      for (let at = 0; at < bytes.length; at += CHUNK_BYTES) {
        await this.js.publish(chunkSubject, bytes.subarray(at, at + CHUNK_BYTES));
        chunks += 1;
      }
      const digest = Base64UrlPaddedCodec.encode(createHash('sha256').update(bytes).digest());
      const record = {
        name,
        description: options.description ?? '',
        options: { max_chunk_size: CHUNK_BYTES },
        bucket: this.bucket,
        nuid: id,
        size: bytes.length,
        chunks,
        mtime: new Date().toISOString(),
        digest: `${DIGEST_PREFIX}${digest}`,
        deleted: false,
      };
      const h = natsHeaders();
      h.set('Nats-Rollup', 'sub');
      await this.js.publish(
        `$O.${this.bucket}.M.${Base64UrlPaddedCodec.encode(name)}`,
        JSON.stringify(record),
        {
          headers: h,
        },
      );
      return { size: bytes.length };
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
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  #direct: Promise<DirectStreamAPI> | undefined;
  /** Direct-get client of the connection, made once (no JetStream API check: the stores did that). */
  readonly #directApi = (): Promise<DirectStreamAPI> =>
    (this.#direct ??= jetstreamManager(this.#nc, { checkAPI: false }).then((jsm) => jsm.direct));
  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#js = jetstream(nc);
    this.#objm = new Objm(nc);
  }

  /** Binds to an existing bucket: `StoreNotFoundError` when there is none, `StoreUnavailableError` on an outage. */
  async open(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    try {
      return new NatsBlobStore(await this.#objm.open(bucket), bucket, this.#directApi, this.#js);
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
      return new NatsBlobStore(objects, bucket, this.#directApi, this.#js);
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
