import { randomUUID } from 'node:crypto';
import { migrate, SqlConstraintError, type Migration, type SqlExecutor, type SqlStore } from '@orderflow/sql';
import { commitMessage, headersOf, subjectPattern } from './commit-message.ts';
import {
  AppendError,
  EventStoreError,
  EventStoreErrorCode,
  ReadError,
  WrongExpectedVersionError,
} from './errors.ts';
import { isSnapshot } from './snapshots.ts';
import type {
  AppendReceipt,
  EventLog,
  LogSubscription,
  NewCommit,
  Snapshot,
  SnapshotStore,
  StoredCommit,
} from './types.ts';

/** Component under which the event store's tables are migrated (see `migrate`). */
export const EVENTSTORE_COMPONENT = 'eventstore';

/** The event store's schema: the log of commits and the snapshots. */
export const eventStoreMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'commits and snapshots',
    sql: `
      CREATE TABLE eventstore_commits (
        stream text NOT NULL,
        position bigint NOT NULL,
        subject text NOT NULL,
        subject_version integer NOT NULL,
        commit_id text NOT NULL,
        headers jsonb NOT NULL,
        body bytea NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (stream, position),
        CONSTRAINT eventstore_commits_subject_version UNIQUE (stream, subject, subject_version),
        CONSTRAINT eventstore_commits_commit_id UNIQUE (stream, commit_id)
      );
      CREATE TABLE eventstore_snapshots (
        key text PRIMARY KEY,
        snapshot jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
];

/** Creates or updates the event store's tables in `sql` (idempotent; replicas may race). */
export async function migrateEventStore(sql: SqlStore): Promise<void> {
  await migrate(sql, eventStoreMigrations, { component: EVENTSTORE_COMPONENT });
}

export interface SqlEventLogOptions {
  /** `ce-source` of every commit, e.g. `orderflow/order-storage`. */
  source: string;
  /** Commits fetched per query while reading or following (default 512). */
  readBatch?: number;
  /**
   * How often a subscription looks for commits written by other processes (default 250 ms). Commits
   * appended through this instance wake its subscriptions at once.
   */
  pollIntervalMs?: number;
}

interface CommitRow {
  [column: string]: unknown;
  position: number;
  subject: string;
  headers: [string, string][];
  body: Uint8Array;
}

const LOCK = 'SELECT pg_advisory_xact_lock(hashtext($1))';

/**
 * {@link EventLog} on the SQL port (PostgreSQL or PGlite). Each stream is a gapless sequence of
 * positions (1, 2, 3…), like a JetStream stream's sequence: an append takes a per-stream
 * transaction lock, so positions are handed out in commit order and a reader never sees a later
 * position before an earlier one. The unique constraint `(stream, subject, subject_version)` is what
 * makes two writers on one version fail; its violation is the same {@link WrongExpectedVersionError}
 * the JetStream log raises. A commit id is unique per stream for ever (JetStream: within the
 * duplicate window). Messages are stored as CloudEvent headers and body, so the same codec reads them.
 * Subscriptions poll (the SQL port has no LISTEN), and wake early on this instance's own appends.
 */
export class SqlEventLog implements EventLog {
  readonly #source: string;
  readonly #readBatch: number;
  readonly #pollIntervalMs: number;
  readonly #wakers = new Set<() => void>();

  constructor(
    readonly sql: SqlStore,
    options: SqlEventLogOptions,
  ) {
    this.#source = options.source;
    this.#readBatch = Math.max(1, options.readBatch ?? 512);
    this.#pollIntervalMs = Math.max(1, options.pollIntervalMs ?? 250);
  }

  /** Migrates the tables, then returns the log. */
  static async create(sql: SqlStore, options: SqlEventLogOptions): Promise<SqlEventLog> {
    await migrateEventStore(sql);
    return new SqlEventLog(sql, options);
  }

  /**
   * {@link EventLog.version}; with `db`, read through that executor (inside a transaction of the same
   * store, so that what the transaction records can be placed after the version it saw).
   */
  async version(stream: string, subject: string, db: SqlExecutor = this.sql): Promise<number> {
    const { rows } = await this.#read(stream, () =>
      db.query<{ position: number }>(
        `SELECT position FROM eventstore_commits WHERE stream = $1 AND subject = $2
          ORDER BY position DESC LIMIT 1`,
        [stream, subject],
      ),
    );
    return Number(rows[0]?.position ?? 0);
  }

  async lastSequence(stream: string): Promise<number> {
    const { rows } = await this.#read(stream, () =>
      this.sql.query<{ last: number | null }>(
        'SELECT max(position) AS last FROM eventstore_commits WHERE stream = $1',
        [stream],
      ),
    );
    return Number(rows[0]?.last ?? 0);
  }

  async append(commit: NewCommit, expectedVersion: number): Promise<AppendReceipt> {
    const commitId = commit.commitId ?? randomUUID();
    const { entries, body } = commitMessage(this.#source, commit, commitId);
    const stream = streamOf(commit);
    try {
      const receipt = await this.sql.transaction(async (tx) => {
        await tx.query(LOCK, [`eventstore.log.${stream}`]);
        const duplicate = await tx.query<{ position: number }>(
          'SELECT position FROM eventstore_commits WHERE stream = $1 AND commit_id = $2',
          [stream, commitId],
        );
        const stored = duplicate.rows[0];
        if (stored) return { version: stored.position, commitId, duplicate: true };
        const { rows } = await tx.query<{
          position: number | null;
          subject_version: number | null;
          last: number | null;
        }>(
          `SELECT (SELECT max(position) FROM eventstore_commits WHERE stream = $1) AS last,
                  s.position, s.subject_version
             FROM (SELECT 1) AS one LEFT JOIN LATERAL (
               SELECT position, subject_version FROM eventstore_commits
                WHERE stream = $1 AND subject = $2 ORDER BY position DESC LIMIT 1) AS s ON true`,
          [stream, commit.subject],
        );
        const row = rows[0];
        if ((row?.position ?? 0) !== expectedVersion) {
          throw new WrongExpectedVersionError(commit.subject, expectedVersion);
        }
        const position = Number(row?.last ?? 0) + 1;
        await tx.query(
          `INSERT INTO eventstore_commits (stream, position, subject, subject_version, commit_id, headers, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [
            stream,
            position,
            commit.subject,
            (row?.subject_version ?? 0) + 1,
            commitId,
            JSON.stringify(entries),
            Buffer.from(body),
          ],
        );
        tx.onCommit(() => this.#wake());
        return { version: position, commitId, duplicate: false };
      });
      return receipt;
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) throw error;
      if (error instanceof SqlConstraintError && error.constraint === 'eventstore_commits_subject_version') {
        throw new WrongExpectedVersionError(commit.subject, expectedVersion, { cause: error });
      }
      throw new AppendError(commit.subject, (error as Error).message, { cause: error });
    }
  }

  async *read(
    stream: string,
    subject: string,
    range: { fromSequence: number; toSequence: number },
  ): AsyncGenerator<StoredCommit & { readonly pending: number }> {
    if (range.toSequence < range.fromSequence) return;
    const filter = filterOf(subject);
    const { rows: counted } = await this.#read(stream, () =>
      this.sql.query<{ n: number }>(
        `SELECT count(*)::integer AS n FROM eventstore_commits
          WHERE stream = $1 AND position BETWEEN $2 AND $3 AND ${filter.where}`,
        [stream, range.fromSequence, range.toSequence, filter.value],
      ),
    );
    let pending = counted[0]?.n ?? 0;
    let from = range.fromSequence;
    while (pending > 0) {
      const rows = await this.#page(stream, filter, from, range.toSequence);
      if (rows.length === 0) return;
      for (const row of rows) {
        pending -= 1;
        yield { ...toCommit(stream, row), pending };
      }
      from = rows.at(-1)!.position + 1;
    }
  }

  subscribe(stream: string, subject: string, options: { fromSequence: number }): LogSubscription {
    const filter = filterOf(subject);
    let stopped = false;
    let wake: (() => void) | undefined;
    const waitForMore = () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#pollIntervalMs);
        const wakers = this.#wakers;
        function done() {
          clearTimeout(timer);
          wakers.delete(done);
          wake = undefined;
          resolve();
        }
        wake = done;
        wakers.add(done);
      });
    const page = (from: number) => this.#page(stream, filter, from, Number.MAX_SAFE_INTEGER);
    async function* commits(): AsyncGenerator<StoredCommit> {
      let from = Math.max(1, options.fromSequence);
      while (!stopped) {
        const rows = await page(from);
        for (const row of rows) {
          if (stopped) return;
          yield toCommit(stream, row);
          from = row.position + 1;
        }
        if (rows.length === 0 && !stopped) await waitForMore();
      }
    }
    const iterable = commits();
    return {
      [Symbol.asyncIterator]: () => iterable,
      stop() {
        stopped = true;
        wake?.();
      },
    };
  }

  #wake(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  #page(stream: string, filter: Filter, from: number, to: number): Promise<CommitRow[]> {
    return this.#read(stream, async () => {
      const { rows } = await this.sql.query<CommitRow>(
        `SELECT position, subject, headers, body FROM eventstore_commits
          WHERE stream = $1 AND position BETWEEN $2 AND $3 AND ${filter.where}
          ORDER BY position LIMIT ${this.#readBatch}`,
        [stream, from, to, filter.value],
      );
      return rows;
    });
  }

  async #read<T>(stream: string, query: () => Promise<T>): Promise<T> {
    try {
      return await query();
    } catch (cause) {
      throw new ReadError(stream, (cause as Error).message, { cause });
    }
  }
}

interface Filter {
  /** Condition on `subject` with the value as parameter `$4`. */
  readonly where: string;
  readonly value: string;
}

function filterOf(subject: string): Filter {
  const pattern = subjectPattern(subject);
  return pattern === undefined
    ? { where: 'subject = $4', value: subject }
    : { where: 'subject ~ $4', value: pattern };
}

/** The commit's stream; unlike JetStream, which routes by subject, a SQL or in-memory log needs it named. */
export function streamOf(commit: NewCommit): string {
  if (commit.stream === undefined || commit.stream === '') {
    throw new EventStoreError(EventStoreErrorCode.Config, `${commit.subject}: the commit names no stream`);
  }
  return commit.stream;
}

function toCommit(stream: string, row: CommitRow): StoredCommit {
  return {
    stream,
    subject: row.subject,
    sequence: Number(row.position),
    headers: headersOf(row.headers),
    body: new Uint8Array(row.body),
  };
}

/** {@link SnapshotStore} in the SQL store's `eventstore_snapshots` table (migrated with the log). */
export class SqlSnapshotStore implements SnapshotStore {
  constructor(
    readonly sql: SqlStore,
    private readonly options: { onInvalid?: (key: string, error: unknown) => void } = {},
  ) {}

  async get(key: string): Promise<Snapshot | undefined> {
    const { rows } = await this.sql.query<{ snapshot: unknown }>(
      'SELECT snapshot FROM eventstore_snapshots WHERE key = $1',
      [key],
    );
    const value = rows[0]?.snapshot;
    if (value === undefined) return undefined;
    if (isSnapshot(value)) return value;
    this.options.onInvalid?.(key, new Error('not a snapshot'));
    return undefined;
  }

  async put(key: string, snapshot: Snapshot): Promise<void> {
    await this.sql.query(
      `INSERT INTO eventstore_snapshots (key, snapshot) VALUES ($1, $2)
       ON CONFLICT (key) DO UPDATE SET snapshot = EXCLUDED.snapshot, updated_at = now()`,
      [key, JSON.stringify(snapshot)],
    );
  }
}
