import {
  checkBucketName,
  checkItemName,
  checkRevision,
  StoreConflictError,
  StoreError,
  StoreNotFoundError,
  StoreUnavailableError,
  type BlobStore,
  type BlobStores,
  type KeyValueEntry,
  type KeyValueStore,
  type KeyValueStores,
} from '@orderflow/messaging';
import { SqlConstraintError, SqlQueryError } from './errors.ts';
import { migrate } from './migrate.ts';
import type { Migration, SqlStore } from './types.ts';

/** Components under which the stores' tables are migrated (see `migrate`). */
export const KEY_VALUE_COMPONENT = 'orderflow/kv';
export const BLOB_COMPONENT = 'orderflow/blobs';

export const keyValueMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'key-value entries',
    sql: `
CREATE SEQUENCE orderflow_kv_revision;
CREATE TABLE orderflow_kv (
  bucket text NOT NULL,
  key text NOT NULL,
  value bytea NOT NULL,
  revision bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bucket, key)
);`,
  },
];

export const blobMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'blob buckets and objects',
    sql: `
CREATE TABLE orderflow_blob_buckets (
  bucket text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orderflow_blobs (
  bucket text NOT NULL REFERENCES orderflow_blob_buckets (bucket),
  name text NOT NULL,
  bytes bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bucket, name)
);`,
  },
];

/**
 * What a failed statement means for the caller: a missing bucket (the row a foreign key names is not
 * there) is "not found"; anything else — closed, unreachable, a statement refused — is an outage.
 */
function storeFailure(bucket: string, key: string | undefined, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  if (error instanceof SqlConstraintError && error.sqlState === '23503') {
    return new StoreNotFoundError(bucket, undefined, { cause: error });
  }
  return new StoreUnavailableError(bucket, key, { cause: error });
}

/** Runs `work`, turning its failures into the storage ports' errors. */
async function asking<T>(bucket: string, key: string | undefined, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw storeFailure(bucket, key, error);
  }
}

/**
 * {@link KeyValueStores} in the SQL store's `orderflow_kv` table (PostgreSQL or PGlite), one row per
 * key. Revisions come from one sequence, so they increase across the buckets of the schema; a
 * compare-and-set is one statement (`INSERT … ON CONFLICT DO NOTHING`, `UPDATE … WHERE revision = $n`)
 * whose row count says who won. Services sharing a bucket open their `SqlStore` on the same schema.
 * `replicas`, `history` and `description` are ignored.
 */
export class SqlKeyValueStores implements KeyValueStores {
  constructor(readonly sql: SqlStore) {}

  /** Migrates the table (idempotent; replicas may race), then binds to the bucket. */
  async create(bucket: string): Promise<KeyValueStore> {
    checkBucketName(bucket);
    await asking(bucket, undefined, () =>
      migrate(this.sql, keyValueMigrations, { component: KEY_VALUE_COMPONENT }),
    );
    return new SqlKeyValueStore(this.sql, bucket);
  }
}

class SqlKeyValueStore implements KeyValueStore {
  constructor(
    private readonly sql: SqlStore,
    readonly bucket: string,
  ) {}

  async get(key: string): Promise<KeyValueEntry> {
    checkItemName(this.bucket, key);
    const { rows } = await asking(this.bucket, key, () =>
      this.sql.query<{ value: Uint8Array; revision: number }>(
        'SELECT value, revision FROM orderflow_kv WHERE bucket = $1 AND key = $2',
        [this.bucket, key],
      ),
    );
    const row = rows[0];
    if (!row) throw new StoreNotFoundError(this.bucket, key);
    return { key, value: row.value, revision: row.revision };
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    checkItemName(this.bucket, key);
    return this.#written(key, 0, () =>
      this.sql.query<{ revision: number }>(
        `INSERT INTO orderflow_kv (bucket, key, value, revision)
         VALUES ($1, $2, $3, nextval('orderflow_kv_revision'))
         ON CONFLICT (bucket, key) DO NOTHING RETURNING revision`,
        [this.bucket, key, value],
      ),
    );
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    checkItemName(this.bucket, key);
    checkRevision(this.bucket, key, revision);
    return this.#written(key, revision, () =>
      this.sql.query<{ revision: number }>(
        `UPDATE orderflow_kv SET value = $3, revision = nextval('orderflow_kv_revision'), updated_at = now()
         WHERE bucket = $1 AND key = $2 AND revision = $4 RETURNING revision`,
        [this.bucket, key, value, revision],
      ),
    );
  }

  async keys(): Promise<string[]> {
    const { rows } = await asking(this.bucket, undefined, () =>
      this.sql.query<{ key: string }>('SELECT key FROM orderflow_kv WHERE bucket = $1', [this.bucket]),
    );
    return rows.map((row) => row.key);
  }

  /** The new revision, or `StoreConflictError` when the statement wrote no row. */
  async #written(
    key: string,
    expected: number,
    write: () => Promise<{ rows: { revision: number }[] }>,
  ): Promise<number> {
    const { rows } = await asking(this.bucket, key, write);
    if (!rows[0]) throw new StoreConflictError(this.bucket, key, expected);
    return rows[0].revision;
  }
}

/**
 * {@link BlobStores} in the SQL store's `orderflow_blob_buckets` and `orderflow_blobs` tables
 * (PostgreSQL or PGlite): an object is one `bytea` value (PostgreSQL keeps it out of line, compressed
 * where it can; a value may reach 1 GB, far above an invoice PDF). A put replaces the row in one
 * statement, so a reader sees the old or the new object. Services sharing a bucket open their
 * `SqlStore` on the same schema. `replicas` and `description` are ignored.
 */
export class SqlBlobStores implements BlobStores {
  constructor(readonly sql: SqlStore) {}

  /** Binds to a bucket `create` made; before any `create` migrated the tables, every bucket is missing. */
  async open(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    const { rows } = await asking(bucket, undefined, () =>
      this.sql
        .query('SELECT 1 FROM orderflow_blob_buckets WHERE bucket = $1', [bucket])
        .catch((error: unknown) => {
          // undefined_table: no bucket was ever created in this schema.
          if (error instanceof SqlQueryError && error.sqlState === '42P01') return { rows: [] };
          throw error;
        }),
    );
    if (rows.length === 0) throw new StoreNotFoundError(bucket, undefined);
    return new SqlBlobStore(this.sql, bucket);
  }

  /** Migrates the tables and records the bucket (idempotent; replicas may race), then binds to it. */
  async create(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    await asking(bucket, undefined, async () => {
      await migrate(this.sql, blobMigrations, { component: BLOB_COMPONENT });
      await this.sql.query(
        'INSERT INTO orderflow_blob_buckets (bucket) VALUES ($1) ON CONFLICT (bucket) DO NOTHING',
        [bucket],
      );
    });
    return new SqlBlobStore(this.sql, bucket);
  }
}

class SqlBlobStore implements BlobStore {
  constructor(
    private readonly sql: SqlStore,
    readonly bucket: string,
  ) {}

  async get(name: string): Promise<Uint8Array> {
    const row = await this.#row<{ bytes: Uint8Array }>('bytes', name);
    if (!row) throw new StoreNotFoundError(this.bucket, name);
    return row.bytes;
  }

  async stat(name: string): Promise<{ size: number } | undefined> {
    const row = await this.#row<{ size: number }>('octet_length(bytes) AS size', name);
    return row && { size: row.size };
  }

  async put(name: string, bytes: Uint8Array): Promise<{ size: number }> {
    checkItemName(this.bucket, name);
    await asking(this.bucket, name, () =>
      this.sql.query(
        `INSERT INTO orderflow_blobs (bucket, name, bytes) VALUES ($1, $2, $3)
         ON CONFLICT (bucket, name) DO UPDATE SET bytes = excluded.bytes, updated_at = now()`,
        [this.bucket, name, bytes],
      ),
    );
    return { size: bytes.length };
  }

  async delete(name: string): Promise<void> {
    checkItemName(this.bucket, name);
    await asking(this.bucket, name, () =>
      this.sql.query('DELETE FROM orderflow_blobs WHERE bucket = $1 AND name = $2', [this.bucket, name]),
    );
  }

  async #row<R extends Record<string, unknown>>(columns: string, name: string): Promise<R | undefined> {
    checkItemName(this.bucket, name);
    const { rows } = await asking(this.bucket, name, () =>
      this.sql.query<R>(`SELECT ${columns} FROM orderflow_blobs WHERE bucket = $1 AND name = $2`, [
        this.bucket,
        name,
      ]),
    );
    return rows[0];
  }
}
