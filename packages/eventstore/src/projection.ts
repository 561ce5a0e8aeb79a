import { isTransient, type DeadLetterSource, type DeadLetterStore } from '@orderflow/messaging';
import type { SqlStore } from '@orderflow/sql';
import type { Aggregate } from './aggregate.ts';
import { EventDecodeError, EventStoreError, EventStoreErrorCode, ProjectionError } from './errors.ts';
import {
  activate,
  applyCommits,
  checkProjection,
  checkpointOf,
  createGeneration,
  dropGeneration,
  generationsOf,
  initialise,
  lockPosition,
  nextGeneration,
  type Position,
} from './read-model.ts';
import type {
  DomainEvent,
  EventLog,
  LogSubscription,
  Projection,
  RebuildProgress,
  RunningProjection,
  StoredCommit,
} from './types.ts';

/** The part of an aggregate a projection reads: its stream, subjects and codec. */
export type ProjectionSource<E extends DomainEvent> = Pick<
  Aggregate<unknown, unknown, E>,
  'stream' | 'subjects' | 'codec' | 'idOf'
>;

export interface ProjectionOptions<E extends DomainEvent, T extends string> {
  /**
   * Where the commits come from: followed with {@link EventLog.subscribe} from the checkpoint on
   * (on JetStream an ordered consumer of this instance's own; on SQL a poll of the commits table).
   */
  log: EventLog;
  /** The read model's store; the checkpoint lives there too. */
  sql: SqlStore;
  source: ProjectionSource<E>;
  projection: Projection<E, T>;
  /** Name the projection's dead letters are filed under (default `projection_<name>`). */
  consumerName?: string;
  /** Commits applied per transaction at most (default 100). */
  batchSize?: number;
  /** Attempts of a failing batch before the projection stops (default 5). */
  maxAttempts?: number;
  /** Delay before the first retry of a failing batch, doubled each time (default 200 ms). */
  retryDelayMs?: number;
  /**
   * What an event that cannot be decoded does (a foreign client's garbage on the aggregate's subjects):
   * `stop` the projection (default), or write it to `deadLetters` (consumer = `consumerName`, with the
   * reason) and go on with the next event.
   */
  onUndecodable?: 'stop' | 'dead-letter';
  /** Where undecodable events go with `onUndecodable: 'dead-letter'` (e.g. `transport.deadLetters`). */
  deadLetters?: DeadLetterStore;
}

/** Longest pause between retries of a batch that fails for a dependency outage. */
const MAX_OUTAGE_RETRY_DELAY_MS = 5_000;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const DRY = Symbol('dry');
/** Resolves after the messages already delivered to the client (microtasks away) have been taken. */
const dry = () => new Promise<typeof DRY>((resolve) => setImmediate(() => resolve(DRY)));

/** A projection's commit as the dead-letter writer sees a delivery. */
function asDelivery(consumer: string, c: StoredCommit): DeadLetterSource {
  const entries = (): [string, string][] =>
    c.headers
      ? [...c.headers.keys()].flatMap((k) => c.headers!.values(k).map((v): [string, string] => [k, v]))
      : [];
  return {
    stream: c.stream,
    consumer,
    subject: c.subject,
    streamSequence: c.sequence,
    deliveryCount: 1,
    headerEntries: entries,
    body: c.body,
    redriven: false,
  };
}

/**
 * Feeds a projection in stream order from a subscription to the log of its own that starts right
 * after the SQL checkpoint, the position of record. Each batch of commits is applied in one transaction that
 * locks the projection's position and moves the checkpoint; a commit at or below the checkpoint is
 * passed over. So several instances (replicas of a service) may run one projection: each reads the
 * log, the lock serialises their batches, and every commit is applied once. A failing batch is retried
 * with backoff, then the projection stops with a {@link ProjectionError} (a new start resumes after the
 * checkpoint);
 * a batch that fails for a dependency outage (`isTransient`: the database is down) is retried until
 * it succeeds, without using up attempts, and a log that fails for an outage is subscribed to again
 * from the checkpoint until it answers; an undecodable event stops it at once, or is dead-lettered
 * and skipped (`onUndecodable`). Within an instance, order is kept by processing one batch at a time.
 */
export async function startProjection<E extends DomainEvent, T extends string>(
  options: ProjectionOptions<E, T>,
): Promise<RunningProjection> {
  const { log, sql, source, projection } = options;
  checkProjection(projection);
  if (options.onUndecodable === 'dead-letter' && !options.deadLetters) {
    throw new EventStoreError(
      EventStoreErrorCode.Config,
      `projection ${projection.name}: onUndecodable 'dead-letter' needs a deadLetters store`,
    );
  }
  const batchSize = options.batchSize ?? 100;
  const maxAttempts = options.maxAttempts ?? 5;
  const retryDelayMs = options.retryDelayMs ?? 200;
  const consumerName = options.consumerName ?? `projection_${projection.name}`;
  const start = await initialise(sql, projection);
  let messages = log.subscribe(source.stream, source.subjects, { fromSequence: start.sequence + 1 });

  let checkpoint = start.sequence;
  let stopping = false;
  const waiters = new Set<{ sequence: number; resolve: () => void }>();
  const advance = (position: Position) => {
    checkpoint = Math.max(checkpoint, position.sequence);
    for (const waiter of waiters) {
      if (waiter.sequence <= checkpoint) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };

  const applyBatch = (commits: readonly StoredCommit[]): Promise<Position> =>
    sql.transaction(async (tx) => {
      // The row lock orders this batch with a rebuild's swap: after a swap the batch goes to the new generation.
      const position = await lockPosition(tx, projection.name);
      const target = {
        projection,
        codec: source.codec,
        idOf: source.idOf,
        ...position,
        checkpoint: position.sequence,
      };
      return { generation: position.generation, sequence: await applyCommits(tx, target, commits) };
    });

  const flush = async (batch: StoredCommit[]): Promise<void> => {
    let outageDelayMs = retryDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        advance(await applyBatch(batch));
        return;
      } catch (error) {
        const sequence = batch[0]?.sequence;
        if (error instanceof EventDecodeError) {
          // Keep the read model as current as the log allows: apply what precedes the bad commit.
          const before = batch.filter((c) => c.sequence < error.sequence);
          if (before.length > 0) await flush(before);
          const bad = batch.find((c) => c.sequence === error.sequence);
          if (options.onUndecodable !== 'dead-letter' || !options.deadLetters || !bad)
            throw new ProjectionError(projection.name, error.sequence, error.message, { cause: error });
          await options.deadLetters.write(asDelivery(consumerName, bad), error);
          const after = batch.filter((c) => c.sequence > error.sequence);
          if (after.length > 0) await flush(after);
          return;
        }
        if (isTransient(error) && !stopping) {
          attempt -= 1; // an outage is not the batch's fault
          await pause(outageDelayMs);
          outageDelayMs = Math.min(outageDelayMs * 2, MAX_OUTAGE_RETRY_DELAY_MS);
          continue;
        }
        if (attempt >= maxAttempts || stopping) {
          throw new ProjectionError(
            projection.name,
            sequence,
            `gave up after ${attempt} attempts: ${(error as Error).message}`,
            { cause: error },
          );
        }
        await pause(retryDelayMs * 2 ** (attempt - 1));
      }
    }
  };

  /** Applies what `subscription` delivers until it ends; rejects with its failure. */
  const follow = async (subscription: LogSubscription, onCommit: () => void): Promise<void> => {
    // A batch is what has arrived by the time the subscription runs dry (or `batchSize`). "Dry" is a
    // macrotask without a next commit: the log's own pending counts are no help (nats.js's getPending()
    // counts queued pull requests as messages, so a batch waiting for it would wait for the next
    // commit, however late).
    const iterator = subscription[Symbol.asyncIterator]();
    const takeNext = () => {
      const next = iterator.next();
      next.catch(() => undefined); // awaited below; until then a failure must not count as unhandled
      return next;
    };
    const batch: StoredCommit[] = [];
    let next = takeNext();
    for (;;) {
      const result = batch.length === 0 ? await next : await Promise.race([next, dry()]);
      if (result === DRY || result.done) {
        if (batch.length > 0) await flush(batch.splice(0));
        if (result === DRY) continue;
        return;
      }
      batch.push(result.value);
      onCommit();
      next = takeNext();
      if (batch.length >= batchSize) await flush(batch.splice(0));
    }
  };
  const loop = (async () => {
    let outageDelayMs = retryDelayMs;
    for (;;) {
      try {
        await follow(messages, () => (outageDelayMs = retryDelayMs));
        return;
      } catch (error) {
        // The log failed for an outage (the SQL log's database down, NATS unreachable): its
        // subscription ended, the projection does not; it reads again after the checkpoint (what was
        // read and not applied comes again) once the log answers.
        if (!isTransient(error) || stopping) throw error;
        messages.stop();
        await pause(outageDelayMs);
        outageDelayMs = Math.min(outageDelayMs * 2, MAX_OUTAGE_RETRY_DELAY_MS);
        if (stopping) return;
        messages = log.subscribe(source.stream, source.subjects, { fromSequence: checkpoint + 1 });
      }
    }
  })();
  const closed = loop.then(
    () => undefined,
    (error: unknown) => {
      messages.stop();
      for (const waiter of waiters) waiter.resolve();
      waiters.clear();
      throw error instanceof ProjectionError
        ? error
        : new ProjectionError(projection.name, undefined, (error as Error).message, { cause: error });
    },
  );
  closed.catch(() => undefined);

  return {
    name: projection.name,
    closed,
    async waitFor(sequence, waitOptions = {}) {
      if (sequence <= checkpoint) return;
      const timeoutMs = waitOptions.timeoutMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      const reached = new Promise<void>((resolve) => waiters.add({ sequence, resolve }));
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new EventStoreError(
                'TIMEOUT',
                `projection ${projection.name} did not reach #${sequence} within ${timeoutMs} ms (at #${checkpoint})`,
              ),
            ),
          timeoutMs,
        );
      });
      try {
        await Promise.race([reached, timedOut, closed]);
      } finally {
        clearTimeout(timer);
      }
      if (checkpoint < sequence) await closed; // woken because the projection stopped
    },
    async stop() {
      stopping = true;
      messages.stop();
      await closed;
    },
  };
}

export interface RebuildOptions<E extends DomainEvent, T extends string> {
  /** Where the commits are read from. */
  log: EventLog;
  sql: SqlStore;
  source: ProjectionSource<E>;
  projection: Projection<E, T>;
  /** Commits applied per transaction (default 500). */
  batchSize?: number;
  /** Called after each batch and once at the end. */
  onProgress?: (progress: RebuildProgress) => void;
}

export interface RebuildResult {
  /** The generation now active. */
  readonly generation: number;
  /** Commits applied to it while rebuilding (catch-up at the swap included). */
  readonly applied: number;
  /** Its checkpoint when it became active. */
  readonly sequence: number;
}

/**
 * Replays the whole log into a fresh generation of the read model (new tables), then swaps the views
 * to it in one transaction and drops the old generation. A running projection may keep going during
 * the rebuild: at the swap, the new generation first catches up to the old one's checkpoint (under
 * the row lock that the runner also takes), so the runner continues on the new tables without a gap.
 */
export async function rebuildProjection<E extends DomainEvent, T extends string>(
  options: RebuildOptions<E, T>,
): Promise<RebuildResult> {
  const { log, sql, source, projection } = options;
  checkProjection(projection);
  const batchSize = options.batchSize ?? 500;
  await initialise(sql, projection);
  const generation = await sql.transaction(async (tx) => {
    const active = await lockPosition(tx, projection.name);
    // Leftovers of an interrupted rebuild are never read: drop them before building another.
    for (const stale of await generationsOf(tx, projection.name)) {
      if (stale !== active.generation) await dropGeneration(tx, projection, stale);
    }
    const next = await nextGeneration(tx, projection.name);
    await createGeneration(tx, projection, next);
    return next;
  });
  const target = (checkpoint: number) => ({
    projection,
    codec: source.codec,
    idOf: source.idOf,
    generation,
    checkpoint,
  });

  const end = await log.lastSequence(source.stream);
  let checkpoint = 0;
  let applied = 0;
  let total = 0;
  let batch: StoredCommit[] = [];
  const flush = async () => {
    const commits = batch;
    batch = [];
    checkpoint = await sql.transaction((tx) => applyCommits(tx, target(checkpoint), commits));
    applied += commits.length;
    options.onProgress?.({ applied, total: Math.max(total, applied), sequence: checkpoint });
  };
  for await (const commit of log.read(source.stream, source.subjects, { fromSequence: 1, toSequence: end })) {
    // Pending counts what matches after this commit, appends since the start included: cap at `end`.
    if (total === 0) total = Math.min(commit.pending + 1, end - commit.sequence + 1);
    batch.push(commit);
    if (batch.length >= batchSize) await flush();
  }
  if (batch.length > 0) await flush();

  const previous = await sql.transaction(async (tx) => {
    const active = await lockPosition(tx, projection.name);
    const built = await checkpointOf(tx, projection.name, generation);
    if (active.sequence > built) {
      const tail: StoredCommit[] = [];
      for await (const commit of log.read(source.stream, source.subjects, {
        fromSequence: built + 1,
        toSequence: active.sequence,
      })) {
        tail.push(commit);
      }
      checkpoint = await applyCommits(tx, target(built), tail);
      applied += tail.length;
    }
    await activate(tx, projection, generation);
    return active.generation;
  });
  if (previous > 0 && previous !== generation) {
    await sql.transaction((tx) => dropGeneration(tx, projection, previous));
  }
  options.onProgress?.({ applied, total: Math.max(total, applied), sequence: checkpoint });
  return { generation, applied, sequence: checkpoint };
}
