import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { ProvisioningError } from './errors.ts';

/**
 * A stream declared in code. Defaults suit an event log: Limits retention, file storage, a
 * two-minute duplicate window, and messages that cannot be deleted or purged.
 */
export interface StreamDeclaration {
  name: string;
  subjects: string[];
  /** Default `file`. */
  storage?: 'file' | 'memory';
  /** Window in which a repeated `Nats-Msg-Id` is dropped (default 120 000 ms). */
  duplicateWindowMs?: number;
  /** 0 = keep forever (default). */
  maxAgeMs?: number;
  /** -1 = unlimited (default). */
  maxBytes?: number;
  /** Replicas in a cluster (default 1). */
  replicas?: number;
  /** Forbid deleting single messages (default true: an event log is append-only). */
  denyDelete?: boolean;
  /** Forbid purging the stream (default true). */
  denyPurge?: boolean;
  description?: string;
}

/** A durable pull consumer declared in code (always explicit ack). */
export interface ConsumerDeclaration {
  stream: string;
  name: string;
  filterSubject?: string;
  ackWaitMs: number;
  /** Server-side delivery cap; the runtime dead-letters before it is reached. -1 = unlimited. */
  maxDeliver: number;
  maxAckPending: number;
  deliverPolicy?: 'all' | 'new';
  description?: string;
}

const ms = (value: number): number => value * 1_000_000;

export function streamConfig(decl: StreamDeclaration): Partial<StreamConfig> & { name: string } {
  return {
    name: decl.name,
    subjects: decl.subjects,
    retention: RetentionPolicy.Limits,
    storage: decl.storage === 'memory' ? StorageType.Memory : StorageType.File,
    discard: DiscardPolicy.Old,
    duplicate_window: ms(decl.duplicateWindowMs ?? 120_000),
    max_age: ms(decl.maxAgeMs ?? 0),
    max_bytes: decl.maxBytes ?? -1,
    num_replicas: decl.replicas ?? 1,
    deny_delete: decl.denyDelete ?? true,
    deny_purge: decl.denyPurge ?? true,
    ...(decl.description ? { description: decl.description } : {}),
  };
}

function isNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.status === 404;
}

/**
 * Creates the stream, or updates it to match. Fields the server cannot change in place (storage,
 * retention) and updates the server refuses raise a {@link ProvisioningError} naming the difference.
 */
export async function ensureStream(jsm: JetStreamManager, decl: StreamDeclaration): Promise<void> {
  const wanted = streamConfig(decl);
  let current: StreamConfig;
  try {
    current = (await jsm.streams.info(decl.name)).config;
  } catch (error) {
    if (!isNotFound(error))
      throw new ProvisioningError(decl.name, `cannot read stream ${decl.name}`, { cause: error });
    try {
      await jsm.streams.add(wanted);
    } catch (cause) {
      // Two replicas starting at once: the other one created it first.
      if (/already in use|already exists/i.test((cause as Error).message)) return ensureStream(jsm, decl);
      throw new ProvisioningError(
        decl.name,
        `cannot create stream ${decl.name}: ${(cause as Error).message}`,
        { cause },
      );
    }
    return;
  }
  const immutable = (['storage', 'retention'] as const).filter((key) => current[key] !== wanted[key]);
  if (immutable.length > 0) {
    throw new ProvisioningError(
      decl.name,
      `stream ${decl.name}: ${immutable.map((k) => `${k} is ${current[k]}, declared ${wanted[k]}`).join('; ')}; ` +
        'the server cannot change this in place (migrate to a new stream)',
    );
  }
  const changed = (Object.keys(wanted) as (keyof typeof wanted)[]).filter(
    (key) => JSON.stringify(current[key] ?? null) !== JSON.stringify(wanted[key] ?? null),
  );
  if (changed.length === 0) return;
  try {
    await jsm.streams.update(decl.name, { ...current, ...wanted });
  } catch (cause) {
    throw new ProvisioningError(
      decl.name,
      `stream ${decl.name}: server refused to update ${changed.join(', ')}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

export function consumerConfig(
  decl: ConsumerDeclaration,
): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: decl.name,
    ack_policy: AckPolicy.Explicit,
    ack_wait: ms(decl.ackWaitMs),
    max_deliver: decl.maxDeliver,
    max_ack_pending: decl.maxAckPending,
    deliver_policy: decl.deliverPolicy === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
    ...(decl.filterSubject ? { filter_subject: decl.filterSubject } : {}),
    ...(decl.description ? { description: decl.description } : {}),
  };
}

/**
 * Creates a durable consumer, or updates it to match its declaration (idempotent; safe when replicas
 * run it at once). The transport calls it before a consumer starts, and the consumer runtime calls it
 * again whenever the server reports the durable missing, so a deleted durable comes back. This is the
 * one place consumers are created: an implementation may route it through another identity (one
 * allowed to create consumers) than the one that pulls.
 */
export type EnsureConsumer = (declaration: ConsumerDeclaration) => Promise<void>;

/** Creates the durable consumer or updates it; what cannot be changed raises a {@link ProvisioningError}. */
export async function ensureConsumer(jsm: JetStreamManager, decl: ConsumerDeclaration): Promise<void> {
  const wanted = consumerConfig(decl);
  let current: ConsumerConfig | undefined;
  try {
    current = (await jsm.consumers.info(decl.stream, decl.name)).config;
  } catch (error) {
    if (!isNotFound(error)) {
      throw new ProvisioningError(decl.stream, `cannot read consumer ${decl.name}`, {
        cause: error,
        consumer: decl.name,
      });
    }
  }
  if (!current) {
    try {
      await jsm.consumers.add(decl.stream, wanted);
      return;
    } catch (cause) {
      if (!/already (in use|exists)/i.test((cause as Error).message)) {
        throw new ProvisioningError(
          decl.stream,
          `cannot create consumer ${decl.name}: ${(cause as Error).message}`,
          {
            cause,
            consumer: decl.name,
          },
        );
      }
      current = (await jsm.consumers.info(decl.stream, decl.name)).config;
    }
  }
  const immutable = (['deliver_policy', 'ack_policy'] as const).filter((key) => current[key] !== wanted[key]);
  if ((current.filter_subject ?? '') !== (wanted.filter_subject ?? ''))
    immutable.push('filter_subject' as never);
  if (immutable.length > 0) {
    throw new ProvisioningError(
      decl.stream,
      `consumer ${decl.name}: cannot change ${immutable.join(', ')} of an existing durable (delete it or use a new name)`,
      { consumer: decl.name },
    );
  }
  const changed = (['ack_wait', 'max_deliver', 'max_ack_pending', 'description'] as const).filter(
    (key) => (current[key] ?? null) !== (wanted[key] ?? null),
  );
  if (changed.length === 0) return;
  try {
    await jsm.consumers.update(decl.stream, decl.name, {
      ack_wait: wanted.ack_wait,
      max_deliver: wanted.max_deliver,
      max_ack_pending: wanted.max_ack_pending,
      ...(wanted.description ? { description: wanted.description } : {}),
    });
  } catch (cause) {
    throw new ProvisioningError(
      decl.stream,
      `consumer ${decl.name}: server refused to update ${changed.join(', ')}: ${(cause as Error).message}`,
      { cause, consumer: decl.name },
    );
  }
}
