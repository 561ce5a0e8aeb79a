import type { MsgHdrs } from '@nats-io/nats-core';
import type { Envelope, MessageContract, PayloadOf } from '@orderflow/messaging';
import type { SqlExecutor } from '@orderflow/sql';

// ───────────────────────────── Domain ─────────────────────────────

/**
 * An event as the domain sees it: `type` is the contract's unversioned name (`account.opened`),
 * `data` its payload in the *current* version. Versions and upcasting stay at the edge.
 */
export interface DomainEvent<TType extends string = string, TData = unknown> {
  readonly type: TType;
  readonly data: TData;
}

/** The domain event of a contract (distributes over a union of contracts). */
export type EventOf<C extends MessageContract> = C extends MessageContract
  ? DomainEvent<C['name'], PayloadOf<C>>
  : never;

/** What `decide` may use besides the command and the state: time and ids are injected, never read. */
export interface DecideContext {
  /** The time of this decision attempt. */
  readonly now: Date;
  /** A new unique id (UUID by default; deterministic in tests). */
  newId(): string;
}

/**
 * An event-sourced aggregate: pure functions over immutable state. Each instance is one subject,
 * `<subjectPrefix>.<id>`, of the stream `stream` (whose subjects are `<subjectPrefix>.*`).
 */
export interface AggregateDefinition<S, C, E extends DomainEvent> {
  /** Name used in logs and error messages, e.g. `account`. */
  readonly name: string;
  /** JetStream stream holding every instance, e.g. `ACCOUNTS`. */
  readonly stream: string;
  /** First subject token, e.g. `accounts` (one subject per instance: `accounts.<id>`). */
  readonly subjectPrefix: string;
  /** Current contract of each event type (one version per name); payloads are validated against them. */
  readonly events: readonly MessageContract[];
  /** Readers of older versions, applied on load and in projections. */
  readonly upcasters?: readonly Upcaster[];
  /**
   * `ce-source` of the one process that appends to this aggregate's subjects. When set, a message
   * there from any other source is not the aggregate's: load skips it (readable or not), and
   * projections treat it as undecodable (`FOREIGN_PRODUCER` when it is otherwise a valid event, its own
   * code when not), instead of folding a forged event in.
   * Default: any source.
   */
  readonly producer?: string;
  /**
   * Version of the state's shape and of `evolve`: bump it whenever either changes, so that snapshots
   * written by older code are ignored (and rewritten) instead of being trusted.
   */
  readonly snapshotVersion: number;
  /** State of an aggregate that has no events. */
  initialState(): S;
  /** Applies one event. Pure, total: must accept every event `decide` ever produced. */
  evolve(state: S, event: E): S;
  /**
   * Decides what happens: returns the events to append (empty = nothing to do), or throws a
   * {@link DomainError} to reject. Pure: may be called again on a fresher state after a conflict.
   */
  decide(command: C, state: S, context: DecideContext): readonly E[];
}

/**
 * Reads an event stored as `from` (`<name>.v<n>`) as `to`. The old payload is validated against
 * `from` before `upcast` runs; the result of a chain is validated against the current contract.
 */
export interface Upcaster {
  readonly from: MessageContract;
  readonly to: MessageContract;
  upcast(data: unknown): unknown;
}

// ───────────────────────────── Stored events ─────────────────────────────

/** Where and when a stored event was written. */
export interface EventMetadata {
  /**
   * Stable id of the event (use it for idempotency): the commit's `ce-id` when the commit holds one
   * event, `<commitId>:<index>` otherwise.
   */
  readonly id: string;
  readonly commitId: string;
  readonly stream: string;
  readonly subject: string;
  readonly aggregateId: string;
  /** Stream sequence of the commit (the aggregate's version once it is applied). */
  readonly sequence: number;
  /** Position in its commit, from 0. */
  readonly index: number;
  /** Events in its commit. */
  readonly commitSize: number;
  /** `ce-type` as stored, before upcasting, e.g. `account.deposited.v1`. */
  readonly storedType: string;
  /** `ce-time` of the commit. */
  readonly time: string;
  readonly correlationId: string;
  readonly causationId: string | undefined;
}

/** A decoded, upcast event with where it came from. */
export type RecordedEvent<E extends DomainEvent = DomainEvent> = E & { readonly metadata: EventMetadata };

// ───────────────────────────── Log port ─────────────────────────────

/** One message of the log: one commit (the events of one decision), not yet decoded. */
export interface StoredCommit {
  readonly stream: string;
  readonly subject: string;
  readonly sequence: number;
  readonly headers: MsgHdrs | undefined;
  readonly body: Uint8Array;
}

/** A decision to store on one subject. */
export interface NewCommit {
  /**
   * Stream the subject belongs to. JetStream routes by subject and ignores it; the SQL and in-memory
   * logs reject a commit without it (`INVALID_CONFIG`).
   */
  readonly stream?: string;
  readonly subject: string;
  readonly aggregateId: string;
  /** Contract and payload of each event, in order (at least one). */
  readonly events: readonly { contract: MessageContract; data: unknown }[];
  /** `ce-id` and `Nats-Msg-Id` of the commit: a retry within the duplicate window is stored once. */
  readonly commitId?: string;
  /** Carries correlation, causation and trace over from the message being handled. */
  readonly causedBy?: Envelope;
}

/** What the log says after an append. */
export interface AppendReceipt {
  /** Stream sequence of the commit: the aggregate's new version. */
  readonly version: number;
  readonly commitId: string;
  /** The commit had already been stored (same `commitId` within the duplicate window). */
  readonly duplicate: boolean;
}

/**
 * The append-only log of commits. Each subject is one aggregate instance; its version is the stream
 * sequence of its last commit (0 = no commit yet). Versions are monotonic but not contiguous.
 */
export interface EventLog {
  /** Version of `subject` now: the stream sequence of its last commit, 0 when it has none. */
  version(stream: string, subject: string): Promise<number>;
  /** Sequence of the last message of the whole stream (0 = empty). */
  lastSequence(stream: string): Promise<number>;
  /**
   * Stores one commit atomically (a single message) if `subject` is still at `expectedVersion`
   * (0 = must be new). Rejects with {@link WrongExpectedVersionError} when another writer came
   * first, {@link AppendError} otherwise; a payload that fails its contract is never sent.
   */
  append(commit: NewCommit, expectedVersion: number): Promise<AppendReceipt>;
  /**
   * Commits of `subject` (may be a wildcard) with `fromSequence <= sequence <= toSequence`, in
   * stream order. Reading stops at `toSequence` even if more was appended meanwhile.
   */
  read(
    stream: string,
    subject: string,
    range: { fromSequence: number; toSequence: number },
  ): AsyncIterable<StoredCommit & { readonly pending: number }>;
  /**
   * Commits of `subject` (may be a wildcard) from `fromSequence` on, in stream order: first those
   * stored now (catch-up), then each one appended later (live), until `stop()` ends the iteration.
   * Delivery is at-most-once per subscription and in order; to resume after a restart, subscribe
   * again from the last sequence handled + 1. A failure of the log ends it with a {@link ReadError}.
   */
  subscribe(stream: string, subject: string, options: { fromSequence: number }): LogSubscription;
}

/** A running subscription to the log (see {@link EventLog.subscribe}). Iterate it once. */
export interface LogSubscription extends AsyncIterable<StoredCommit> {
  /** Ends the iteration (after the commit in hand); idempotent. */
  stop(): void;
}

// ───────────────────────────── Snapshots ─────────────────────────────

/** State of one aggregate instance after the commit `version`. */
export interface Snapshot<S = unknown> {
  /** The aggregate's `snapshotVersion` when this was written; any other value makes it void. */
  readonly snapshotVersion: number;
  /** Stream sequence of the last commit folded into `state`. */
  readonly version: number;
  /** Events folded into `state` (decides when the next snapshot is due). */
  readonly eventCount: number;
  readonly state: S;
}

/**
 * A cache of aggregate state. Losing it costs a longer replay, never correctness: readers ignore a
 * snapshot that is unreadable, of another `snapshotVersion`, or ahead of the log.
 */
export interface SnapshotStore {
  /** The snapshot under `key` (the aggregate's subject), or `undefined` (none, or unreadable). */
  get(key: string): Promise<Snapshot | undefined>;
  put(key: string, snapshot: Snapshot): Promise<void>;
}

// ───────────────────────────── Aggregate store ─────────────────────────────

/** An aggregate instance as loaded from the log. */
export interface LoadedAggregate<S> {
  readonly id: string;
  readonly state: S;
  /** Stream sequence of the last commit applied; 0 = no events. Pass it as `expectedVersion`. */
  readonly version: number;
  /** Events applied since the beginning. */
  readonly eventCount: number;
  /** Commits replayed from the log for this load (after the snapshot, if one was used). */
  readonly replayedCommits: number;
  /** Version of the snapshot or in-memory state the replay started after; `undefined` = from the first event. */
  readonly fromVersion: number | undefined;
}

export interface AppendOptions {
  /** Version the decision was taken on (0 = the aggregate must be new). */
  expectedVersion: number;
  /** Deterministic commit id (e.g. derived from a command id) to make a re-sent command idempotent. */
  commitId?: string;
  causedBy?: Envelope;
}

/** Result of a command: what was decided and the state after it. */
export interface CommandResult<S, E extends DomainEvent> {
  readonly id: string;
  /** Events appended (empty when `decide` had nothing to do). */
  readonly events: readonly E[];
  readonly state: S;
  /** Version after the command (unchanged when no event was appended). */
  readonly version: number;
  /** Decide-and-append attempts it took (1 = no conflict). */
  readonly attempts: number;
  /** The commit id had been stored before (a re-sent command): nothing new was appended. */
  readonly duplicate: boolean;
}

export interface CommandOptions {
  /** Deterministic commit id, e.g. the command message's id. */
  commitId?: string;
  causedBy?: Envelope;
}

/** Handles commands for one aggregate type: load, decide, append, and on a conflict reload and retry. */
export type CommandHandler<S, C, E extends DomainEvent> = (
  id: string,
  command: C,
  options?: CommandOptions,
) => Promise<CommandResult<S, E>>;

// ───────────────────────────── Projections ─────────────────────────────

/** Physical table names of one generation of a read model, by logical name. */
export type Tables<T extends string> = { readonly [K in T]: string };

/**
 * A read model in SQL fed by the log. Each generation of it lives in its own tables
 * (`<table>_g<n>`); readers query a view named after the logical table, which a rebuild swaps to the
 * new generation. `apply` must only touch the given tables through the given executor: it runs in the
 * transaction that also moves the checkpoint, so a change and its checkpoint commit together.
 */
export interface Projection<E extends DomainEvent = DomainEvent, T extends string = string> {
  /** Identity of the read model: `[a-z][a-z0-9_]*`; also names its durable consumer. */
  readonly name: string;
  /** Logical table names (`[a-z][a-z0-9_]*`); readers use them as view names. */
  readonly tables: readonly T[];
  /** Creates the tables of a fresh generation. */
  setup(tx: SqlExecutor, tables: Tables<T>): Promise<void>;
  /** Applies one event. Called in stream order, exactly once per event per generation. */
  apply(tx: SqlExecutor, event: RecordedEvent<E>, tables: Tables<T>): Promise<void>;
}

/** Progress of a rebuild: log messages (commits) applied out of those present when it started. */
export interface RebuildProgress {
  readonly applied: number;
  readonly total: number;
  /** Stream sequence of the last commit applied. */
  readonly sequence: number;
}

/** A projection being fed by its durable consumer. */
export interface RunningProjection {
  readonly name: string;
  /** Resolves once the checkpoint reached `sequence` (e.g. an append's `version`). */
  waitFor(sequence: number, options?: { timeoutMs?: number }): Promise<void>;
  /** Stops pulling and waits for the batch in hand to commit. */
  stop(): Promise<void>;
  /** Settles when the projection stopped: resolves after `stop()`, rejects with a {@link ProjectionError}. */
  readonly closed: Promise<void>;
}
