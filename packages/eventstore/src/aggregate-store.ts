import { randomUUID } from 'node:crypto';
import type { Aggregate } from './aggregate.ts';
import { fold } from './aggregate.ts';
import { Header } from '@orderflow/messaging';
import { EventDecodeError, WrongExpectedVersionError } from './errors.ts';
import type {
  CommandHandler,
  CommandOptions,
  DomainEvent,
  EventLog,
  LoadedAggregate,
  RecordedEvent,
  Snapshot,
  StoredCommit,
  SnapshotStore,
} from './types.ts';

export interface AggregateStoreOptions {
  log: EventLog;
  /** Where snapshots are kept; none = always replay from the first event. */
  snapshots?: SnapshotStore;
  /** A snapshot is written whenever the event count crosses a multiple of this (default 100). */
  snapshotEvery?: number;
  /** Told when a snapshot could not be written; the append it followed has succeeded regardless. */
  onSnapshotError?: (error: unknown, id: string) => void;
  /**
   * Instances whose last known state is kept in memory (least recently used first out; default 1000,
   * 0 = none). A load then only replays what other writers appended since: one round trip for the
   * version when nothing changed. Like a snapshot, the cache is never trusted beyond the log: the
   * command handler decides on it without that round trip, but only an append that the log accepts
   * at the cached version acts on such a decision.
   */
  cacheSize?: number;
}

/**
 * The commit's events, or none when another process than the aggregate's producer wrote it (see
 * `AggregateDefinition.producer`), readable or not: such a message is not part of the instance's
 * history. Projections dead-letter it, so it stays visible.
 */
function decodeOwn<S, C, E extends DomainEvent>(
  aggregate: Aggregate<S, C, E>,
  commit: StoredCommit,
  id: string,
): RecordedEvent<E>[] {
  try {
    return aggregate.codec.decode(commit, id);
  } catch (error) {
    const producer = aggregate.producer;
    if (
      error instanceof EventDecodeError &&
      producer !== undefined &&
      commit.headers?.get(Header.Source) !== producer
    ) {
      return [];
    }
    throw error;
  }
}

/** A loaded aggregate after an append; `duplicate` when the commit id had been stored before. */
export type AppendedAggregate<S> = LoadedAggregate<S> & { readonly duplicate: boolean };

/**
 * Loads and appends one aggregate type. State is rebuilt by replaying the instance's subject from
 * the latest usable snapshot up to the version found when the load started.
 */
export class AggregateStore<S, C, E extends DomainEvent> {
  readonly #snapshotEvery: number;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, Snapshot<S>>();

  constructor(
    readonly aggregate: Aggregate<S, C, E>,
    private readonly options: AggregateStoreOptions,
  ) {
    this.#snapshotEvery = Math.max(1, options.snapshotEvery ?? 100);
    this.#cacheSize = Math.max(0, options.cacheSize ?? 1_000);
  }

  #remember(loaded: LoadedAggregate<S>): void {
    if (this.#cacheSize === 0) return;
    const { id, version, eventCount, state } = loaded;
    this.#cache.delete(id); // re-inserted last: the Map's order is the recency order
    this.#cache.set(id, { snapshotVersion: this.aggregate.snapshotVersion, version, eventCount, state });
    if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string);
  }

  /**
   * What this store last knew of the instance (its last load or append here), without asking the log;
   * an instance it knows nothing of is taken to be new (initial state, version 0). Undefined when the
   * store keeps no state in memory (`cacheSize` 0). Another writer may have appended since: the result
   * is a guess, safe to act on only through {@link append}, whose expected version refuses it then.
   */
  unverified(id: string): LoadedAggregate<S> | undefined {
    if (this.#cacheSize === 0) return undefined;
    const cached = this.#cache.get(id);
    if (!cached || cached.snapshotVersion !== this.aggregate.snapshotVersion) {
      const state = this.aggregate.initialState();
      return { id, state, version: 0, eventCount: 0, replayedCommits: 0, fromVersion: undefined };
    }
    const { state, version, eventCount } = cached;
    return { id, state, version, eventCount, replayedCommits: 0, fromVersion: version };
  }

  /**
   * The instance's state at its current version. Rejects with {@link EventDecodeError} when a stored
   * message is not a readable event (naming subject and sequence), {@link ReadError} when the log fails.
   */
  async load(id: string): Promise<LoadedAggregate<S>> {
    const { aggregate, log, snapshots } = { ...this.options, aggregate: this.aggregate };
    const subject = aggregate.subject(id);
    const cached = this.#cache.get(id);
    const [version, snapshot] = await Promise.all([
      log.version(aggregate.stream, subject),
      cached ?? snapshots?.get(subject),
    ]);
    const usable: Snapshot | undefined =
      snapshot && snapshot.snapshotVersion === aggregate.snapshotVersion && snapshot.version <= version
        ? snapshot
        : undefined;
    let state = usable ? (usable.state as S) : aggregate.initialState();
    let eventCount = usable?.eventCount ?? 0;
    let replayedCommits = 0;
    const commits = log.read(aggregate.stream, subject, {
      fromSequence: (usable?.version ?? 0) + 1,
      toSequence: version,
    });
    for await (const commit of commits) {
      const events = decodeOwn(aggregate, commit, id);
      state = fold(aggregate, state, events);
      eventCount += events.length;
      replayedCommits++;
    }
    const loaded = { id, state, version, eventCount, replayedCommits, fromVersion: usable?.version };
    this.#remember(loaded);
    return loaded;
  }

  /**
   * Appends the events of one decision taken on `loaded`, as one commit, if nobody appended since
   * (else {@link WrongExpectedVersionError}). Returns the aggregate after it, and writes a snapshot
   * when one is due. A commit id already stored within the duplicate window is not stored again:
   * the result is then the instance as reloaded from the log, with `duplicate` set.
   */
  async append(
    loaded: LoadedAggregate<S>,
    events: readonly E[],
    options: CommandOptions = {},
  ): Promise<AppendedAggregate<S>> {
    const { aggregate } = this;
    const receipt = await this.options.log.append(
      {
        stream: aggregate.stream,
        subject: aggregate.subject(loaded.id),
        aggregateId: loaded.id,
        events: events.map((event) => aggregate.codec.encode(event)),
        ...(options.commitId !== undefined && { commitId: options.commitId }),
        ...(options.causedBy !== undefined && { causedBy: options.causedBy }),
      },
      loaded.version,
    );
    if (receipt.duplicate) return { ...(await this.load(loaded.id)), duplicate: true };
    const after: AppendedAggregate<S> = {
      id: loaded.id,
      state: fold(aggregate, loaded.state, events),
      version: receipt.version,
      eventCount: loaded.eventCount + events.length,
      replayedCommits: 0,
      fromVersion: loaded.fromVersion,
      duplicate: false,
    };
    this.#remember(after);
    const every = this.#snapshotEvery;
    if (
      this.options.snapshots &&
      Math.floor(after.eventCount / every) > Math.floor(loaded.eventCount / every)
    ) {
      await this.snapshot(after);
    }
    return after;
  }

  /** Writes a snapshot of `loaded` now (also used to warm a long stream). Never throws. */
  async snapshot(loaded: LoadedAggregate<S>): Promise<void> {
    try {
      await this.options.snapshots?.put(this.aggregate.subject(loaded.id), {
        snapshotVersion: this.aggregate.snapshotVersion,
        version: loaded.version,
        eventCount: loaded.eventCount,
        state: loaded.state,
      });
    } catch (error) {
      this.options.onSnapshotError?.(error, loaded.id);
    }
  }
}

export interface CommandHandlerOptions {
  /** Load-decide-append attempts before a conflict is reported (default 5). */
  maxAttempts?: number;
  /** Time of a decision (default `new Date()`). */
  clock?: () => Date;
  /** Ids handed to `decide` (default `randomUUID`). */
  newId?: () => string;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A command handler for one aggregate type: loads the instance, lets `decide` choose the events, and
 * appends them as one commit expecting the loaded version. A conflict reloads and decides again on
 * the newer state, up to `maxAttempts`; a {@link DomainError} from `decide` is thrown at once.
 *
 * The first decision is taken on {@link AggregateStore.unverified} (what this process last knew, or
 * a new instance), with no read of the log: when it yields events and the log accepts them at that
 * version, that is the result (one round trip: the append). A conflict, no events or an error there
 * are not results — the command is then handled as above on the state loaded from the log, so every
 * outcome other than an accepted append is decided on the log's current state.
 *
 * Commands for one instance through one handler run one after the other, so a process never has two
 * appends to the same subject in flight with the same expected version. Optimistic concurrency still
 * guards against other processes; note that on a clustered stream nats-server before 2.10 does not
 * serialise concurrent proposals with one expected subject sequence (nats-server issue 4320), so
 * there it is this per-process ordering that keeps an aggregate's log valid.
 */
export function commandHandler<S, C, E extends DomainEvent>(
  store: AggregateStore<S, C, E>,
  options: CommandHandlerOptions = {},
): CommandHandler<S, C, E> {
  const { maxAttempts, clock, newId } = {
    maxAttempts: 5,
    clock: () => new Date(),
    newId: randomUUID,
    ...options,
  } satisfies Required<CommandHandlerOptions>;
  const running = new Map<string, Promise<unknown>>();
  const oneAtATime = <R>(id: string, work: () => Promise<R>): Promise<R> => {
    const result = (running.get(id) ?? Promise.resolve()).then(work, work);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    running.set(id, settled);
    void settled.then(() => {
      if (running.get(id) === settled) running.delete(id);
    });
    return result;
  };
  return (id, command, commandOptions = {}) =>
    oneAtATime(id, async () => {
      // First on what this process last knew, without asking the log for the version: acted on only
      // when the decision appends (the expected version refuses it if another writer came first).
      // Anything else it yields — no events, a domain error, a conflict — is decided again below on
      // the state loaded from the log, and is not counted as an attempt.
      const guess = store.unverified(id);
      if (guess) {
        let events: readonly E[] = [];
        try {
          events = store.aggregate.decide(command, guess.state, { now: clock(), newId });
        } catch {
          // Decided again on the loaded state, where a real error recurs.
        }
        if (events.length > 0) {
          try {
            const after = await store.append(guess, events, commandOptions);
            return {
              id,
              events: after.duplicate ? [] : events,
              state: after.state,
              version: after.version,
              attempts: 1,
              duplicate: after.duplicate,
            };
          } catch (error) {
            if (!(error instanceof WrongExpectedVersionError)) throw error;
          }
        }
      }
      for (let attempt = 1; ; attempt++) {
        const loaded = await store.load(id);
        const events = store.aggregate.decide(command, loaded.state, { now: clock(), newId });
        if (events.length === 0) {
          return {
            id,
            events,
            state: loaded.state,
            version: loaded.version,
            attempts: attempt,
            duplicate: false,
          };
        }
        try {
          const after = await store.append(loaded, events, commandOptions);
          return {
            id,
            events: after.duplicate ? [] : events,
            state: after.state,
            version: after.version,
            attempts: attempt,
            duplicate: after.duplicate,
          };
        } catch (error) {
          if (!(error instanceof WrongExpectedVersionError)) throw error;
          if (attempt >= maxAttempts) {
            throw new WrongExpectedVersionError(error.subject, error.expectedVersion, {
              cause: error,
              attempts: attempt,
            });
          }
          // A little jitter keeps two writers that collided from colliding again in lockstep.
          await pause(Math.random() * 5 * attempt);
        }
      }
    });
}
