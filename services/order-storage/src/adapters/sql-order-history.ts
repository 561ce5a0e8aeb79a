import type { Aggregate, SqlEventLog } from '@orderflow/eventstore';
import type { Envelope } from '@orderflow/messaging';
import type { SqlExecutor, SqlStore } from '@orderflow/sql';
import type { OrderCommand, OrderEvent, OrderState } from '../domain/order.ts';
import type { HistoryEntry, OrderHistory, OrderHistoryRead, SkippedMessage } from '../ports/order-history.ts';
import { orderEntries } from './order-history.ts';

interface HistoryRow {
  [column: string]: unknown;
  source: string;
  event_id: string;
  type: string;
  time: string;
  data: unknown;
  traceparent: string | null;
  after_version: number;
}

/**
 * {@link OrderHistory} without a broker that keeps every source's events: the order's own events
 * come from the SQL event log, the other services' events from the `order_history` table, where
 * order-storage's consumers record each one (in the transaction of the fact it establishes) together
 * with the order's version in the log at that moment. Reading merges the two: an entry recorded at
 * version v comes after the order's commit v and before the next one; entries of one version in the
 * order they were recorded. Events are recorded as the consumers received them (already checked
 * against their contracts and producers), so only the order's commits can be skipped.
 */
export class SqlOrderHistory implements OrderHistory {
  constructor(
    private readonly deps: {
      readonly store: SqlStore;
      readonly log: SqlEventLog;
      readonly aggregate: Aggregate<OrderState, OrderCommand, OrderEvent>;
    },
  ) {}

  async record(tx: SqlExecutor, orderId: string, event: Envelope): Promise<void> {
    const { log, aggregate } = this.deps;
    const version = await log.version(aggregate.stream, aggregate.subject(orderId), tx);
    await tx.query(
      `INSERT INTO order_history (order_id, source, event_id, type, time, data, traceparent, after_version)
       VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)
       ON CONFLICT (order_id, source, event_id) DO NOTHING`,
      [
        orderId,
        event.source,
        event.id,
        event.type,
        event.time,
        JSON.stringify(event.data ?? null),
        event.traceparent ?? null,
        version,
      ],
    );
  }

  async read(orderId: string): Promise<OrderHistoryRead> {
    const { store, log, aggregate } = this.deps;
    const subject = aggregate.subject(orderId);
    const { rows } = await store.query<HistoryRow>(
      `SELECT source, event_id, type, time, data, traceparent, after_version FROM order_history
        WHERE order_id = $1 ORDER BY seq`,
      [orderId],
    );
    const reported = rows.map((row) => ({ ...row, after_version: Number(row.after_version) }));
    const events: HistoryEntry[] = [];
    const skipped: SkippedMessage[] = [];
    const seen = new Set<string>();
    const add = (entry: Omit<HistoryEntry, 'version'> & { id: string; source: string }) => {
      const key = `${entry.source} ${entry.id}`;
      if (seen.has(key)) return;
      seen.add(key);
      events.push({ version: events.length + 1, ...entry });
    };
    let next = 0;
    const reportedUpTo = (version: number) => {
      for (; next < reported.length && (reported[next]?.after_version ?? 0) < version; next++) {
        const row = reported[next]!;
        add({
          type: row.type,
          time: row.time,
          data: row.data,
          id: row.event_id,
          source: row.source,
          subject: orderId,
          ...(row.traceparent !== null && { traceparent: row.traceparent }),
        });
      }
    };
    const last = await log.version(aggregate.stream, subject);
    for await (const commit of log.read(aggregate.stream, subject, { fromSequence: 1, toSequence: last })) {
      reportedUpTo(commit.sequence);
      try {
        const decoded = orderEntries(aggregate, commit, orderId);
        if (typeof decoded === 'string')
          skipped.push({ subject, sequence: commit.sequence, reason: decoded });
        else for (const entry of decoded) add(entry);
      } catch (error) {
        skipped.push({ subject, sequence: commit.sequence, reason: (error as Error).message });
      }
    }
    reportedUpTo(Number.POSITIVE_INFINITY);
    return { events, skipped };
  }
}
