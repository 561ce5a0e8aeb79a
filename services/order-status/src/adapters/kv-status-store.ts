import {
  StoreConflictError,
  StoreNotFoundError,
  type KeyValueStore,
  type KeyValueStores,
} from '@orderflow/messaging';
import type { StatusRecord } from '../domain/status.ts';
import { OrderStatusError, StatusErrorCode } from '../errors.ts';

/** A record as read, with the revision a compare-and-set write must name. */
export interface VersionedRecord {
  readonly record: StatusRecord;
  /** Revision of the entry in the key-value bucket. */
  readonly revision: number;
}

/** Where the projection keeps one record per order. */
export interface StatusStore {
  read(orderId: string): Promise<VersionedRecord | undefined>;
  /**
   * Writes `record` if the entry is still at `revision` (0: only if there is none). Resolves with the
   * entry's new revision, or `undefined` when another writer came first (nothing written), so the
   * caller reads again and re-applies.
   */
  write(orderId: string, record: StatusRecord, revision: number): Promise<number | undefined>;
  /** Every order id with a record, in no particular order (a scan: for the operations console). */
  ids(): Promise<string[]>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * {@link StatusStore} in a key-value bucket (JetStream KV, SQL or in memory): key = order id, value =
 * the JSON record. Store outages reject with `StoreUnavailableError` (retried in place).
 */
export class KvStatusStore implements StatusStore {
  constructor(readonly kv: KeyValueStore) {}

  /** Creates the bucket if needed (idempotent; replicas may start at once) and binds to it. */
  static async open(stores: KeyValueStores, bucket: string, options: { replicas?: number } = {}) {
    const kv = await stores.create(bucket, {
      history: 1,
      replicas: options.replicas ?? 1,
      description: 'order-status: the view of each order (key = order id)',
    });
    return new KvStatusStore(kv);
  }

  async read(orderId: string): Promise<VersionedRecord | undefined> {
    let entry;
    try {
      entry = await this.kv.get(orderId);
    } catch (error) {
      if (error instanceof StoreNotFoundError) return undefined;
      throw error;
    }
    try {
      return { record: JSON.parse(decoder.decode(entry.value)) as StatusRecord, revision: entry.revision };
    } catch (error) {
      throw new OrderStatusError(StatusErrorCode.CorruptRecord, `record of order ${orderId} is not JSON`, {
        cause: error,
      });
    }
  }

  ids(): Promise<string[]> {
    return this.kv.keys();
  }

  async write(orderId: string, record: StatusRecord, revision: number): Promise<number | undefined> {
    const value = encoder.encode(JSON.stringify(record));
    try {
      return revision === 0
        ? await this.kv.create(orderId, value)
        : await this.kv.update(orderId, value, revision);
    } catch (error) {
      if (error instanceof StoreConflictError) return undefined;
      throw error;
    }
  }
}
