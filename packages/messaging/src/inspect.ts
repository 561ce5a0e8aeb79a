import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';

/*
 * Read-only views of a running deployment, for operators: who answers NATS service discovery, the
 * streams and every consumer's position. The `orderflow` CLI prints them; the gateway's operations
 * console serves them as JSON. The caller needs `$SRV.>` requests and JetStream list/info rights.
 */

/** One endpoint of a service instance, as `$SRV.STATS` reports it. */
export interface EndpointStats {
  readonly name: string;
  readonly subject: string;
  readonly queue_group?: string;
  readonly num_requests: number;
  readonly num_errors: number;
  /** Mean processing time in nanoseconds. */
  readonly average_processing_time: number;
}

/** One running instance of a service (a replica), as it answered `$SRV.STATS`. */
export interface ServiceInstance {
  readonly name: string;
  readonly id: string;
  readonly version: string;
  /** ISO time the instance started. */
  readonly started?: string;
  readonly endpoints?: readonly EndpointStats[];
}

/**
 * Every instance answering `$SRV.STATS` within `waitMs` (default 1000 ms), sorted by service name and
 * id. Replies that are not service stats are left out. An empty list: no service answered.
 */
export async function discoverServices(
  nc: NatsConnection,
  options: { waitMs?: number } = {},
): Promise<ServiceInstance[]> {
  const replies = await nc.requestMany('$SRV.STATS', '', {
    strategy: 'timer',
    maxWait: options.waitMs ?? 1_000,
  });
  const found: ServiceInstance[] = [];
  for await (const msg of replies) {
    try {
      const stats = msg.json<ServiceInstance>();
      if (typeof stats?.name === 'string' && typeof stats.id === 'string') found.push(stats);
    } catch {
      // not a micro service reply: not an instance
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

/** A stream's size and shape. */
export interface StreamSummary {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly messages: number;
  readonly bytes: number;
  readonly consumers: number;
  readonly replicas: number;
  readonly lastSequence: number;
}

/** Every stream, sorted by name. */
export async function streamSummaries(nc: NatsConnection): Promise<StreamSummary[]> {
  const jsm = await jetstreamManager(nc);
  const list = await jsm.streams.list().next();
  return list
    .map((s) => ({
      name: s.config.name,
      subjects: s.config.subjects ?? [],
      messages: s.state.messages,
      bytes: s.state.bytes,
      consumers: s.state.consumer_count,
      replicas: s.config.num_replicas,
      lastSequence: s.state.last_seq,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** One consumer's position in its stream. */
export interface ConsumerPosition {
  readonly stream: string;
  readonly name: string;
  /** Its filter subject, if any. */
  readonly filterSubject?: string;
  /** Messages of its filter not yet delivered (`num_pending`). */
  readonly pending: number;
  /** Delivered, not yet acknowledged. */
  readonly ackPending: number;
  readonly redelivered: number;
  /** Stream sequence of the last message delivered. */
  readonly delivered: number;
  /** The stream's last sequence minus the consumer's acknowledged floor: how far behind it is. */
  readonly lag: number;
}

/** Every consumer of `stream` (default: of every stream), sorted by stream and name. */
export async function consumerPositions(
  nc: NatsConnection,
  options: { stream?: string } = {},
): Promise<ConsumerPosition[]> {
  const jsm = await jetstreamManager(nc);
  const names = options.stream
    ? [options.stream]
    : (await jsm.streams.list().next()).map((s) => s.config.name);
  const rows: ConsumerPosition[] = [];
  for (const stream of names) {
    const last = (await jsm.streams.info(stream)).state.last_seq;
    for (const c of await jsm.consumers.list(stream).next()) {
      rows.push({
        stream,
        name: c.name,
        ...(c.config.filter_subject !== undefined && { filterSubject: c.config.filter_subject }),
        pending: c.num_pending,
        ackPending: c.num_ack_pending,
        redelivered: c.num_redelivered,
        delivered: c.delivered.stream_seq,
        lag: Math.max(0, last - c.ack_floor.stream_seq),
      });
    }
  }
  return rows.sort((a, b) => a.stream.localeCompare(b.stream) || a.name.localeCompare(b.name));
}
