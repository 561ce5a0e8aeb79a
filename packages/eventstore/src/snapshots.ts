import type { NatsConnection } from '@nats-io/nats-core';
import { Kvm, type KV } from '@nats-io/kv';
import type { Snapshot, SnapshotStore } from './types.ts';

export interface KvSnapshotStoreOptions {
  /** Bucket name (default `eventstore_snapshots`). */
  bucket?: string;
  /** Replicas of the bucket in a cluster (default 1). */
  replicas?: number;
  /** Told about a snapshot that could not be read; the load then replays from the start. */
  onInvalid?: (key: string, error: unknown) => void;
}

/** Whether a stored value has the shape of a {@link Snapshot} (internal). */
export function isSnapshot(value: unknown): value is Snapshot {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    Number.isInteger(v.snapshotVersion) &&
    Number.isInteger(v.version) &&
    Number.isInteger(v.eventCount) &&
    'state' in v
  );
}

/**
 * {@link SnapshotStore} in a JetStream KV bucket (history 1: only the latest snapshot per key is kept).
 * The key is the aggregate's subject, so one bucket serves every aggregate type.
 */
export class KvSnapshotStore implements SnapshotStore {
  private constructor(
    readonly kv: KV,
    private readonly options: KvSnapshotStoreOptions,
  ) {}

  /** Opens the bucket, creating it when missing. */
  static async create(nc: NatsConnection, options: KvSnapshotStoreOptions = {}): Promise<KvSnapshotStore> {
    const kv = await new Kvm(nc).create(options.bucket ?? 'eventstore_snapshots', {
      history: 1,
      replicas: options.replicas ?? 1,
    });
    return new KvSnapshotStore(kv, options);
  }

  async get(key: string): Promise<Snapshot | undefined> {
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== 'PUT') return undefined;
    try {
      const value = entry.json<unknown>();
      if (isSnapshot(value)) return value;
      throw new Error('not a snapshot');
    } catch (error) {
      this.options.onInvalid?.(key, error);
      return undefined;
    }
  }

  async put(key: string, snapshot: Snapshot): Promise<void> {
    await this.kv.put(key, JSON.stringify(snapshot));
  }
}
