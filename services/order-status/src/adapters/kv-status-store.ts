import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { StatusRecord } from '../domain/status.ts';
import { OrderStatusError, StatusErrorCode } from '../errors.ts';

/** A record as read, with the revision a compare-and-set write must name. */
export interface VersionedRecord {
  readonly record: StatusRecord;
  /** KV revision of the entry (its stream sequence in the bucket). */
  readonly revision: number;
}

/** Where the projection keeps one record per order. */
export interface StatusStore {
  read(orderId: string): Promise<VersionedRecord | undefined>;
  /**
   * Writes `record` if the entry is still at `revision` (0: only if there is none). Resolves `false`
   * when another writer came first (nothing written), so the caller reads again and re-applies.
   */
  write(orderId: string, record: StatusRecord, revision: number): Promise<boolean>;
  /** Every order id with a record, in no particular order (a scan: for the operations console). */
  ids(): Promise<string[]>;
}

// A failed `Nats-Expected-Last-Subject-Sequence` check: another writer came first.
const WRONG_LAST_SEQUENCE: ReadonlySet<number> = new Set([
  JetStreamApiCodes.StreamWrongLastSequence,
  JetStreamApiCodes.StreamWrongLastSequenceUnknown,
]);

function isConflict(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return WRONG_LAST_SEQUENCE.has(error.code);
  return error instanceof Error && /wrong last sequence/i.test(error.message);
}

const encoder = new TextEncoder();

/** {@link StatusStore} in a JetStream KV bucket: key = order id, value = the JSON record. */
export class KvStatusStore implements StatusStore {
  private constructor(readonly kv: KV) {}

  /** Creates the bucket if needed (idempotent; replicas may start at once) and binds to it. */
  static async open(nc: NatsConnection, bucket: string, options: { replicas?: number } = {}) {
    const kv = await new Kvm(nc).create(bucket, {
      history: 1,
      replicas: options.replicas ?? 1,
      description: 'order-status: the view of each order (key = order id)',
    });
    return new KvStatusStore(kv);
  }

  async read(orderId: string): Promise<VersionedRecord | undefined> {
    const entry = await this.kv.get(orderId);
    if (!entry || entry.operation !== 'PUT') return undefined;
    try {
      return { record: entry.json<StatusRecord>(), revision: entry.revision };
    } catch (error) {
      throw new OrderStatusError(StatusErrorCode.CorruptRecord, `record of order ${orderId} is not JSON`, {
        cause: error,
      });
    }
  }

  async ids(): Promise<string[]> {
    const ids: string[] = [];
    for await (const key of await this.kv.keys()) ids.push(key);
    return ids;
  }

  async write(orderId: string, record: StatusRecord, revision: number): Promise<boolean> {
    const value = encoder.encode(JSON.stringify(record));
    try {
      if (revision === 0) await this.kv.create(orderId, value);
      else await this.kv.update(orderId, value, revision);
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }
}
