import { randomUUID } from 'node:crypto';
import { commitMessage, headersOf, subjectMatches } from './commit-message.ts';
import { WrongExpectedVersionError } from './errors.ts';
import { streamOf } from './sql-event-log.ts';
import type {
  AppendReceipt,
  EventLog,
  LogSubscription,
  NewCommit,
  Snapshot,
  SnapshotStore,
  StoredCommit,
} from './types.ts';

interface MemoryCommit {
  readonly subject: string;
  readonly commitId: string;
  readonly entries: [string, string][];
  readonly body: Uint8Array;
}

/**
 * {@link EventLog} in this process's memory, for fast unit tests. Same contract as the other logs:
 * gapless positions per stream from 1, the same stored message format and codec, the same
 * {@link WrongExpectedVersionError}; a commit id is unique per stream for ever. Appends are
 * synchronous inside, so they are atomic; subscriptions are woken by appends (no polling).
 */
export class MemoryEventLog implements EventLog {
  readonly #streams = new Map<string, MemoryCommit[]>();
  readonly #wakers = new Set<() => void>();

  constructor(private readonly options: { source: string }) {}

  #log(stream: string): MemoryCommit[] {
    let log = this.#streams.get(stream);
    if (!log) this.#streams.set(stream, (log = []));
    return log;
  }

  #version(stream: string, subject: string): number {
    const log = this.#log(stream);
    for (let i = log.length - 1; i >= 0; i--) if (log[i]!.subject === subject) return i + 1;
    return 0;
  }

  version(stream: string, subject: string): Promise<number> {
    return Promise.resolve(this.#version(stream, subject));
  }

  lastSequence(stream: string): Promise<number> {
    return Promise.resolve(this.#log(stream).length);
  }

  // Check and push with no await between them: that is what makes an append atomic here.
  async append(commit: NewCommit, expectedVersion: number): Promise<AppendReceipt> {
    const commitId = commit.commitId ?? randomUUID();
    const { entries, body } = commitMessage(this.options.source, commit, commitId);
    const stream = streamOf(commit);
    const log = this.#log(stream);
    const stored = log.findIndex((c) => c.commitId === commitId);
    if (stored >= 0) return { version: stored + 1, commitId, duplicate: true };
    if (this.#version(stream, commit.subject) !== expectedVersion) {
      throw new WrongExpectedVersionError(commit.subject, expectedVersion);
    }
    log.push({ subject: commit.subject, commitId, entries, body });
    for (const wake of [...this.#wakers]) wake();
    return { version: log.length, commitId, duplicate: false };
  }

  async *read(
    stream: string,
    subject: string,
    range: { fromSequence: number; toSequence: number },
  ): AsyncGenerator<StoredCommit & { readonly pending: number }> {
    const matches = subjectMatches(subject);
    const log = this.#log(stream);
    const last = Math.min(range.toSequence, log.length);
    const found: StoredCommit[] = [];
    for (let seq = Math.max(1, range.fromSequence); seq <= last; seq++) {
      const c = log[seq - 1]!;
      if (matches(c.subject)) found.push(toCommit(stream, seq, c));
    }
    for (const [i, commit] of found.entries()) yield { ...commit, pending: found.length - i - 1 };
  }

  subscribe(stream: string, subject: string, options: { fromSequence: number }): LogSubscription {
    const matches = subjectMatches(subject);
    const log = this.#log(stream);
    const wakers = this.#wakers;
    let stopped = false;
    let wake: (() => void) | undefined;
    async function* commits(): AsyncGenerator<StoredCommit> {
      let seq = Math.max(1, options.fromSequence);
      while (!stopped) {
        const c = log[seq - 1];
        if (c) {
          seq += 1;
          if (matches(c.subject)) yield toCommit(stream, seq - 1, c);
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = () => {
            wakers.delete(wake!);
            resolve();
          };
          wakers.add(wake);
        });
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
}

function toCommit(stream: string, sequence: number, c: MemoryCommit): StoredCommit {
  return { stream, subject: c.subject, sequence, headers: headersOf(c.entries), body: c.body };
}

/** {@link SnapshotStore} in memory; values are copied in and out, as a real store would. */
export class MemorySnapshotStore implements SnapshotStore {
  readonly #snapshots = new Map<string, Snapshot>();

  get(key: string): Promise<Snapshot | undefined> {
    const value = this.#snapshots.get(key);
    return Promise.resolve(value && structuredClone(value));
  }

  put(key: string, snapshot: Snapshot): Promise<void> {
    this.#snapshots.set(key, structuredClone(snapshot));
    return Promise.resolve();
  }
}
