// The event-store conformance suite: every implementation of the EventLog and SnapshotStore ports
// must pass it (JetStream, SQL on PostgreSQL and PGlite, in memory). A harness opens a log for one
// fresh stream; `features` states where implementations differ, and a case that does not apply is
// skipped with that reason.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { defineEvent, ValidationError, type MessageContract } from '@orderflow/messaging';
import type { SqlStore } from '@orderflow/sql';
import { defineAggregate, type Aggregate } from './aggregate.ts';
import { AggregateStore, commandHandler } from './aggregate-store.ts';
import {
  AppendError,
  DomainError,
  EventStoreError,
  InvalidAggregateIdError,
  WrongExpectedVersionError,
} from './errors.ts';
import { rebuildProjection } from './projection.ts';
import type { EventLog, EventOf, Projection, SnapshotStore, StoredCommit } from './types.ts';

export interface EventStoreFeatures {
  /**
   * Streams exist only once provisioned, and an append to a subject no stream captures fails
   * (JetStream). SQL and in-memory logs create a stream on its first append.
   */
  readonly declaredStreams: boolean;
  /**
   * A commit id is de-duplicated for ever (SQL, in memory) instead of within the stream's duplicate
   * window (JetStream, 2 minutes by default).
   */
  readonly permanentDeduplication: boolean;
}

/** One log under test, for one stream with subjects `<subjectPrefix>.*`. */
export interface EventStoreUnderTest {
  readonly log: EventLog;
  readonly snapshots: SnapshotStore;
  /** Where the projection's read model lives (any SqlStore). */
  readonly readModel: SqlStore;
  dispose(): Promise<void>;
}

export interface EventStoreHarness {
  readonly features: EventStoreFeatures;
  /** A log where `stream` (subjects `<subjectPrefix>.*`) exists and is empty. */
  open(stream: { name: string; subjectPrefix: string }): Promise<EventStoreUnderTest>;
  /** Releases what the harness shares between cases (servers, templates). */
  close?(): Promise<void>;
}

export const TallyOpened = defineEvent({
  name: 'tally.opened',
  schema: Type.Object({ owner: Type.String({ minLength: 1 }) }),
});
export const TallyAdded = defineEvent({
  name: 'tally.added',
  schema: Type.Object({ by: Type.Integer({ minimum: 1 }) }),
});
type TallyEvent = EventOf<typeof TallyOpened | typeof TallyAdded>;
type TallyCommand = { type: 'open'; owner: string } | { type: 'add'; by: number };
interface TallyState {
  readonly owner: string | undefined;
  readonly total: number;
}

/** A small aggregate for the suite: opened once, then added to. */
export function tallyAggregate(
  stream: string,
  subjectPrefix: string,
): Aggregate<TallyState, TallyCommand, TallyEvent> {
  return defineAggregate<TallyState, TallyCommand, TallyEvent>({
    name: 'tally',
    stream,
    subjectPrefix,
    events: [TallyOpened, TallyAdded],
    snapshotVersion: 1,
    initialState: () => ({ owner: undefined, total: 0 }),
    evolve: (state, event) => {
      switch (event.type) {
        case 'tally.opened':
          return { ...state, owner: event.data.owner };
        case 'tally.added':
          return { ...state, total: state.total + event.data.by };
        default:
          return event satisfies never;
      }
    },
    decide: (command, state) => {
      switch (command.type) {
        case 'open':
          if (state.owner !== undefined) throw new DomainError('ALREADY_OPEN', 'tally is open');
          return [{ type: 'tally.opened', data: { owner: command.owner } }];
        case 'add':
          if (state.owner === undefined) throw new DomainError('NOT_OPEN', 'open the tally first');
          if (command.by < 1) throw new DomainError('NOT_POSITIVE', 'add at least 1');
          return [{ type: 'tally.added', data: { by: command.by } }];
        default:
          return command satisfies never;
      }
    },
  });
}

const totalsProjection: Projection<TallyEvent, 'tally_totals'> = {
  name: 'tally_totals',
  tables: ['tally_totals'],
  async setup(tx, t) {
    await tx.query(
      `CREATE TABLE ${t.tally_totals} (id text PRIMARY KEY, total bigint NOT NULL, last bigint NOT NULL)`,
    );
  },
  async apply(tx, event, t) {
    const by = event.type === 'tally.added' ? event.data.by : 0;
    await tx.query(
      `INSERT INTO ${t.tally_totals} (id, total, last) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET total = ${t.tally_totals}.total + $2, last = $3`,
      [event.metadata.aggregateId, by, event.metadata.sequence],
    );
  },
};

let counter = 0;
type NewEvent = { contract: MessageContract; data: unknown };
const added = (by: number): NewEvent => ({ contract: TallyAdded, data: { by } });
const opened = (owner: string): NewEvent => ({ contract: TallyOpened, data: { owner } });

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Runs the suite against one implementation. */
export function eventStoreConformance(name: string, harness: () => EventStoreHarness): void {
  describe(`event store conformance: ${name}`, () => {
    let h: EventStoreHarness;
    const opened_: EventStoreUnderTest[] = [];
    before(() => {
      h = harness();
    });
    after(async () => {
      await Promise.all(opened_.map((o) => o.dispose()));
      await h.close?.();
    });
    const fresh = async () => {
      counter += 1;
      const id = `${process.pid}${Date.now().toString(36)}${counter}`;
      const stream = `TALLY${id}`.toUpperCase();
      const subjectPrefix = `tally${id}`;
      const under = await h.open({ name: stream, subjectPrefix });
      opened_.push(under);
      const tally = tallyAggregate(stream, subjectPrefix);
      const commit = (id: string, events: NewEvent[], commitId?: string) => ({
        stream,
        subject: tally.subject(id),
        aggregateId: id,
        events,
        ...(commitId !== undefined && { commitId }),
      });
      return { ...under, tally, stream, commit };
    };

    test('append, version and read: one commit per append, versions rise, instances apart', async () => {
      const { log, tally, stream, commit } = await fresh();
      assert.equal(await log.version(stream, tally.subject('t1')), 0);
      assert.equal(await log.lastSequence(stream), 0);
      const first = await log.append(commit('t1', [opened('ada')]), 0);
      const second = await log.append(commit('t1', [added(2), added(3)]), first.version);
      await log.append(commit('t2', [opened('bob')]), 0);
      assert.ok(second.version > first.version);
      assert.equal(second.duplicate, false);
      assert.equal(await log.version(stream, tally.subject('t1')), second.version);
      const commits = await collect(
        log.read(stream, tally.subject('t1'), { fromSequence: 1, toSequence: second.version }),
      );
      assert.deepEqual(
        commits.map((c) => c.sequence),
        [first.version, second.version],
      );
      const events = commits.flatMap((c) => tally.codec.decode(c, 't1'));
      assert.deepEqual(
        events.map((e) => [e.type, e.data]),
        [
          ['tally.opened', { owner: 'ada' }],
          ['tally.added', { by: 2 }],
          ['tally.added', { by: 3 }],
        ],
      );
      assert.equal(events[1]!.metadata.commitId, second.commitId);
      assert.equal(events[2]!.metadata.index, 1);
    });

    test('a stale or wrong expected version is a WrongExpectedVersionError and stores nothing', async () => {
      const { log, tally, stream, commit } = await fresh();
      const first = await log.append(commit('t1', [opened('ada')]), 0);
      await log.append(commit('t1', [added(1)]), first.version);
      const before = await log.lastSequence(stream);
      for (const expected of [first.version, 0, before + 10]) {
        await assert.rejects(
          log.append(commit('t1', [added(5)]), expected),
          (error: unknown) =>
            error instanceof WrongExpectedVersionError &&
            error.code === 'WRONG_EXPECTED_VERSION' &&
            error.subject === tally.subject('t1') &&
            error.expectedVersion === expected,
        );
      }
      assert.equal(await log.lastSequence(stream), before);
    });

    test('writers racing on one version: exactly one wins, the others get WrongExpectedVersionError', async () => {
      const { log, tally, stream, commit } = await fresh();
      const first = await log.append(commit('t1', [opened('ada')]), 0);
      const results = await Promise.allSettled(
        [1, 2, 3, 4, 5].map((by) => log.append(commit('t1', [added(by)]), first.version)),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(won.length, 1);
      for (const r of lost) assert.ok(r.reason instanceof WrongExpectedVersionError, String(r.reason));
      const all = await collect(
        log.read(stream, tally.subject('t1'), {
          fromSequence: 1,
          toSequence: await log.lastSequence(stream),
        }),
      );
      assert.equal(all.length, 2);
    });

    test('a commit id stored before is not stored again (duplicate receipt)', async () => {
      const { log, stream, commit } = await fresh();
      const first = await log.append(commit('t1', [opened('ada')], 'cmd-1'), 0);
      const again = await log.append(commit('t1', [opened('ada')], 'cmd-1'), 0);
      assert.deepEqual(again, { version: first.version, commitId: 'cmd-1', duplicate: true });
      assert.equal(await log.lastSequence(stream), first.version);
    });

    test('bad input gets typed errors before anything is stored', async () => {
      const { log, tally, stream, commit } = await fresh();
      await assert.rejects(
        log.append(commit('t1', []), 0),
        (error: unknown) => error instanceof EventStoreError && error.code === 'INVALID_CONFIG',
      );
      await assert.rejects(
        log.append({ ...commit('t1', []), events: [{ contract: TallyAdded, data: { by: 'lots' } }] }, 0),
        ValidationError,
      );
      await assert.rejects(log.append(commit('t1', [added(0)]), 0), ValidationError);
      assert.throws(() => tally.subject('no spaces'), InvalidAggregateIdError);
      assert.throws(() => tally.subject('a.b'), InvalidAggregateIdError);
      assert.equal(await log.lastSequence(stream), 0);
      const store = new AggregateStore(tally, { log, cacheSize: 0 });
      await assert.rejects(store.load('bad/id'), InvalidAggregateIdError);
    });

    test('an append to a subject of no stream fails with AppendError', async (t) => {
      if (!h.features.declaredStreams) return t.skip('streams are created by their first append');
      const { log } = await fresh();
      await assert.rejects(
        log.append({ subject: 'nostream.t1', aggregateId: 't1', events: [opened('ada')] }, 0),
        AppendError,
      );
    });

    test('ordering: a wildcard read returns every instance in append order, within its range', async () => {
      const { log, tally, stream, commit } = await fresh();
      const versions = new Map<string, number>();
      const order: [string, number][] = [];
      for (const [i, id] of ['a', 'b', 'c', 'a', 'c', 'b', 'a'].entries()) {
        const v = versions.get(id) ?? 0;
        const receipt = await log.append(commit(id, [v === 0 ? opened(id) : added(i)]), v);
        versions.set(id, receipt.version);
        order.push([tally.subject(id), receipt.version]);
      }
      const end = await log.lastSequence(stream);
      const all = await collect(log.read(stream, tally.subjects, { fromSequence: 1, toSequence: end }));
      assert.deepEqual(
        all.map((c) => [c.subject, c.sequence]),
        order,
      );
      assert.deepEqual(
        all.map((c) => c.pending),
        all.map((_, i) => all.length - i - 1),
      );
      const middle = await collect(
        log.read(stream, tally.subjects, { fromSequence: order[2]![1], toSequence: order[4]![1] }),
      );
      assert.deepEqual(
        middle.map((c) => c.sequence),
        order.slice(2, 5).map(([, s]) => s),
      );
      assert.deepEqual(
        await collect(log.read(stream, tally.subjects, { fromSequence: 5, toSequence: 4 })),
        [],
      );
    });

    test('the aggregate API: command handler, DomainError not retried, racing handlers all applied', async () => {
      const { log, tally } = await fresh();
      const store = () => new AggregateStore(tally, { log, cacheSize: 0 });
      const handle = commandHandler(store());
      await assert.rejects(
        handle('t1', { type: 'add', by: 1 }),
        (e: unknown) => e instanceof DomainError && e.code === 'NOT_OPEN',
      );
      const open = await handle('t1', { type: 'open', owner: 'ada' });
      assert.equal(open.attempts, 1);
      const handlers = [commandHandler(store()), commandHandler(store())];
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => handlers[i % 2]!('t1', { type: 'add', by: i + 1 })),
      );
      const loaded = await store().load('t1');
      assert.deepEqual(loaded.state, { owner: 'ada', total: 36 });
      assert.equal(loaded.eventCount, 9);
      assert.equal(loaded.version, Math.max(...results.map((r) => r.version)));
      await assert.rejects(
        handle('t1', { type: 'open', owner: 'x' }),
        (e: unknown) => e instanceof DomainError && e.code === 'ALREADY_OPEN',
      );
    });

    test('snapshots: a load starts after the latest one; one of another snapshotVersion is ignored', async () => {
      const { log, snapshots, tally, stream } = await fresh();
      const handle = commandHandler(
        new AggregateStore(tally, { log, snapshots, snapshotEvery: 2, cacheSize: 0 }),
      );
      await handle('t1', { type: 'open', owner: 'ada' });
      for (const by of [1, 2, 3, 4]) await handle('t1', { type: 'add', by });
      const snapshot = await snapshots.get(tally.subject('t1'));
      assert.ok(snapshot);
      assert.equal(snapshot.eventCount, 4);
      const loaded = await new AggregateStore(tally, { log, snapshots, cacheSize: 0 }).load('t1');
      assert.deepEqual(loaded.state, { owner: 'ada', total: 10 });
      assert.equal(loaded.fromVersion, snapshot.version);
      assert.equal(loaded.replayedCommits, 1);
      const newer = { ...tallyAggregate(stream, tally.subjectPrefix), snapshotVersion: 2 };
      const replayed = await new AggregateStore(
        { ...tally, snapshotVersion: newer.snapshotVersion },
        { log, snapshots, cacheSize: 0 },
      ).load('t1');
      assert.deepEqual(
        [replayed.fromVersion, replayed.replayedCommits, replayed.state.total],
        [undefined, 5, 10],
      );
      assert.equal(await snapshots.get(tally.subject('nobody')), undefined);
    });

    test('projection rebuild: a fresh generation replays the whole log, then replaces the old one', async () => {
      const { log, readModel, tally } = await fresh();
      const handle = commandHandler(new AggregateStore(tally, { log }));
      const projection = { ...totalsProjection, name: `tally_totals_${counter}` };
      for (const id of ['a', 'b']) await handle(id, { type: 'open', owner: id });
      for (const [id, by] of [
        ['a', 1],
        ['b', 10],
        ['a', 2],
      ] as const)
        await handle(id, { type: 'add', by });
      const first = await rebuildProjection({ log, sql: readModel, source: tally, projection });
      assert.equal(first.applied, 5);
      const last = (await handle('b', { type: 'add', by: 5 })).version;
      const second = await rebuildProjection({
        log,
        sql: readModel,
        source: tally,
        projection,
        batchSize: 2,
      });
      assert.equal(second.generation, first.generation + 1);
      assert.equal(second.sequence, last);
      const { rows } = await readModel.query<{ id: string; total: number }>(
        'SELECT id, total FROM tally_totals ORDER BY id',
      );
      assert.deepEqual(rows, [
        { id: 'a', total: 3 },
        { id: 'b', total: 15 },
      ]);
    });

    test('subscription: catches up from a position, then follows live appends until stopped', async () => {
      const { log, tally, stream, commit } = await fresh();
      const a = await log.append(commit('a', [opened('a')]), 0);
      const b = await log.append(commit('b', [opened('b')]), 0);
      const a2 = await log.append(commit('a', [added(1)]), a.version);
      const subscription = log.subscribe(stream, tally.subjects, { fromSequence: b.version });
      const seen: StoredCommit[] = [];
      const wanted = 4;
      const done = (async () => {
        for await (const c of subscription) {
          seen.push(c);
          if (seen.length === 2) {
            // live: appended after the catch-up was delivered
            await log.append(commit('b', [added(2)]), b.version);
            await log.append(commit('c', [opened('c')]), 0);
          }
          if (seen.length === wanted) subscription.stop();
        }
      })();
      await done;
      assert.deepEqual(
        seen.map((c) => c.subject),
        [tally.subject('b'), tally.subject('a'), tally.subject('b'), tally.subject('c')],
      );
      assert.equal(seen[1]!.sequence, a2.version);
      const sequences = seen.map((c) => c.sequence);
      assert.deepEqual(
        sequences,
        [...sequences].sort((x, y) => x - y),
      );
      assert.deepEqual(
        tally.codec.decode(seen[2]!, 'b').map((e) => e.data),
        [{ by: 2 }],
      );
      // one instance only, and a subscription stopped before it started ends at once
      const onlyA = log.subscribe(stream, tally.subject('a'), { fromSequence: 1 });
      const mine: number[] = [];
      for await (const c of onlyA) {
        mine.push(c.sequence);
        if (mine.length === 2) onlyA.stop();
      }
      assert.deepEqual(mine, [a.version, a2.version]);
      const stopped = log.subscribe(stream, tally.subjects, { fromSequence: 1 });
      stopped.stop();
      assert.deepEqual(await collect(stopped), []);
    });
  });
}
