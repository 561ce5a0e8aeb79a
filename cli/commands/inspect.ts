import { jetstream, jetstreamManager, type JetStreamManager, type MsgRequest } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  ORDER_EVENT_SOURCES,
  OrderingTopology,
  type OrderEventSource,
  type OrderingTopology as Topology,
} from '@orderflow/contracts';
import {
  consumerPositions,
  DeadLetters,
  decodeEnvelope,
  Header,
  type Envelope,
  discoverServices,
  streamSummaries,
  type ConsumerPosition,
  type ServiceInstance,
} from '@orderflow/messaging';

/** Where a command writes its lines (stdout in the CLI, an array in tests). */
export type Say = (line: string) => void;

/**
 * `orderflow services`: every process answering NATS service discovery (`$SRV.STATS`), one line per
 * instance with its uptime, then its endpoints with requests, errors and mean processing time.
 * Returns the instances found.
 */
export async function services(
  nc: NatsConnection,
  say: Say,
  options: { waitMs?: number } = {},
): Promise<ServiceInstance[]> {
  const found = await discoverServices(nc, options);
  if (found.length === 0) {
    say('no services answered $SRV.STATS');
    return found;
  }
  say(`${'service'.padEnd(20)} ${'id'.padEnd(24)} ${'version'.padEnd(8)} up`);
  for (const s of found) {
    const up = s.started ? formatDuration(Date.now() - Date.parse(s.started)) : '?';
    say(`${s.name.padEnd(20)} ${s.id.padEnd(24)} ${s.version.padEnd(8)} ${up}`);
    for (const e of s.endpoints ?? []) {
      const mean = (e.average_processing_time / 1e6).toFixed(2);
      say(
        `    ${e.name.padEnd(22)} ${e.subject.padEnd(36)} requests ${e.num_requests}  errors ${e.num_errors}  mean ${mean} ms`,
      );
    }
  }
  say(`${found.length} instance(s) of ${new Set(found.map((s) => s.name)).size} service(s)`);
  return found;
}

/** `orderflow streams`: every stream with its messages, bytes, subjects, consumers and replicas. */
export async function streams(nc: NatsConnection, say: Say): Promise<number> {
  const list = await streamSummaries(nc);
  if (list.length === 0) {
    say('no streams');
    return 0;
  }
  say(
    `${'stream'.padEnd(24)} ${'messages'.padStart(10)} ${'bytes'.padStart(12)} ${'consumers'.padStart(9)}  replicas  subjects`,
  );
  for (const s of list) {
    say(
      `${s.name.padEnd(24)} ${String(s.messages).padStart(10)} ${formatBytes(s.bytes).padStart(12)} ` +
        `${String(s.consumers).padStart(9)}  ${String(s.replicas).padStart(8)}  ${s.subjects.join(' ')}`,
    );
  }
  return list.length;
}

/** One durable's position, as `consumers` prints it. */
export type ConsumerRow = ConsumerPosition;

/** `orderflow consumers [--stream S]`: every durable with pending (lag), ack-pending and redelivered. */
export async function consumers(
  nc: NatsConnection,
  say: Say,
  options: { stream?: string } = {},
): Promise<ConsumerRow[]> {
  const rows = await consumerPositions(nc, options);
  if (rows.length === 0) {
    say('no consumers');
    return rows;
  }
  say(
    `${'stream'.padEnd(14)} ${'consumer'.padEnd(40)} ${'pending'.padStart(8)} ${'ack-pending'.padStart(11)} ${'redelivered'.padStart(11)} ${'lag'.padStart(8)}`,
  );
  for (const r of rows)
    say(
      `${r.stream.padEnd(14)} ${r.name.padEnd(40)} ${String(r.pending).padStart(8)} ${String(r.ackPending).padStart(11)} ` +
        `${String(r.redelivered).padStart(11)} ${String(r.lag).padStart(8)}`,
    );
  return rows;
}

/** One step of an order's timeline. */
export interface TimelineEntry {
  seq: number;
  time: string;
  type: string;
  source: string;
  traceId: string | undefined;
}

/**
 * `orderflow trace <orderId>`: the order's timeline across services, from the event log (every
 * subject of the ORDERING stream about that id, in stream order: who did what when), with the trace
 * id of each step (look it up in your tracing backend), then the order's dead letters, if any.
 */
export async function traceOrder(
  nc: NatsConnection,
  orderId: string,
  say: Say,
  topology: Topology = OrderingTopology,
): Promise<TimelineEntry[]> {
  const jsm: JetStreamManager = await jetstreamManager(nc);
  const js = jetstream(nc);
  // Stream message gets of `*.<id>` in stream order (what the operator identity may do; ordered
  // consumers it may not create): every producer's subject about the order, none of another source's.
  const filter = topology.subjects.orderHistory(orderId);
  const entries: TimelineEntry[] = [];
  for (let seq = 1; ;) {
    // nats.js types `next_by_subj` for direct gets only; STREAM.MSG.GET takes it too (nats-server ≥ 2.9).
    const query = { next_by_subj: filter, seq } as unknown as MsgRequest;
    const msg = await jsm.streams.getMessage(topology.stream, query);
    if (!msg) break;
    seq = msg.seq + 1;
    const source = topology.eventSourceOf(msg.subject);
    if (source === undefined || !ORDER_EVENT_SOURCES.includes(source as OrderEventSource)) continue;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(msg.header, msg.data);
    } catch (error) {
      // Poison in the log (not a CloudEvent) is a step of the timeline too, marked as such.
      const reason = error instanceof Error ? error.message : String(error);
      entries.push({
        seq: msg.seq,
        time: msg.time.toISOString(),
        type: `(${reason})`,
        source: '?',
        traceId: undefined,
      });
      continue;
    }
    entries.push({
      seq: msg.seq,
      // A message without ce-time (from outside the toolkit) is placed by the time the stream stored it.
      time: msg.header.has(Header.Time) ? envelope.time : msg.time.toISOString(),
      type: envelope.type,
      source: envelope.source.replace(/^orderflow\//, ''),
      traceId: envelope.traceparent?.split('-')[1],
    });
  }
  entries.sort((a, b) => a.seq - b.seq);
  if (entries.length === 0) {
    say(`no events about ${orderId} in ${topology.stream}`);
  } else {
    const start = Date.parse(entries[0]!.time);
    say(`order ${orderId}: ${entries.length} event(s)`);
    for (const e of entries) {
      const offset = `+${((Date.parse(e.time) - start) / 1000).toFixed(3)}s`.padStart(10);
      say(
        `${String(e.seq).padStart(8)}  ${e.time}  ${offset}  ${e.source.padEnd(18)} ${e.type.padEnd(28)} trace ${e.traceId ?? '-'}`,
      );
    }
    const traces = new Set(entries.map((e) => e.traceId).filter(Boolean));
    say(`trace id(s): ${[...traces].join(' ')}`);
  }
  const letters = await new DeadLetters(js, jsm).list({ limit: 10_000 }).catch(() => []);
  for (const letter of letters.filter((l) => l.headers['ce-subject'] === orderId))
    say(
      `dead letter ${letter.seq}: ${letter.headers['ce-type'] ?? '?'} at ${letter.consumer}: ${letter.code} ${letter.reason}`,
    );
  return entries;
}

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}
