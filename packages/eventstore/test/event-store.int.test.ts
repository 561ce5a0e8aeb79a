import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import { createEnvelope, envelopeHeaders, JetStreamPublisher } from '@orderflow/messaging';
import { startNatsServer, type NatsServer } from '@orderflow/testing';
import {
  AggregateStore,
  commandHandler,
  CommitContract,
  DomainError,
  EventDecodeError,
  InvalidAggregateIdError,
  WrongExpectedVersionError,
  type EventLog,
} from '../src/mod.ts';
import { AccountOpened, FEE, MoneyDepositedV1, type AccountEvent } from './fixtures/account.ts';
import { accountFixture, connect } from './fixtures/harness.ts';

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connect(server.url);
});
after(async () => {
  await nc?.close();
  await server?.dispose();
});

const fixedClock = () => new Date('2025-03-01T10:00:00.000Z');

describe('event store on JetStream', () => {
  test('append then load: the state, the version and one message per command', async () => {
    const { account, log, store } = await accountFixture(nc);
    const handle = commandHandler(store(), { clock: fixedClock });
    const opened = await handle('a1', { type: 'open', owner: 'ada' });
    assert.equal(opened.attempts, 1);
    const deposited = await handle('a1', { type: 'deposit', amount: 50 });
    assert.ok(deposited.version > opened.version);

    const loaded = await store().load('a1');
    assert.deepEqual(loaded.state, { status: 'open', owner: 'ada', balance: 50, movements: 1 });
    assert.equal(loaded.version, deposited.version);
    assert.equal(loaded.eventCount, 2);
    assert.equal(await log.version(account.stream, account.subject('a1')), deposited.version);
    // another instance's events are not part of this one
    const other = await store().load('a2');
    assert.deepEqual([other.version, other.eventCount, other.state.status], [0, 0, 'new']);
  });

  test('a stale writer gets WrongExpectedVersionError and nothing is stored', async () => {
    const { account, log, store } = await accountFixture(nc);
    const s = store();
    await commandHandler(s)('a1', { type: 'open', owner: 'ada' });
    const first = await s.load('a1');
    const second = await s.load('a1');
    await s.append(first, [{ type: 'account.deposited', data: { amount: 1, currency: 'EUR' } }]);
    await assert.rejects(
      s.append(second, [{ type: 'account.deposited', data: { amount: 2, currency: 'EUR' } }]),
      (error: unknown) =>
        error instanceof WrongExpectedVersionError &&
        error.code === 'WRONG_EXPECTED_VERSION' &&
        error.subject === account.subject('a1') &&
        error.expectedVersion === second.version,
    );
    // expected version 0: must be new
    await assert.rejects(
      s.append({ ...second, version: 0 }, [{ type: 'account.opened', data: { owner: 'x', openedAt: 't' } }]),
      WrongExpectedVersionError,
    );
    assert.equal((await s.load('a1')).state.balance, 1);
    assert.equal((await log.jsm.streams.info(account.stream)).state.messages, 2);
  });

  test('the command handler reloads and decides again after losing a race', async () => {
    const { log, store } = await accountFixture(nc);
    const plain = store();
    await commandHandler(plain)('a1', { type: 'open', owner: 'ada' });
    await commandHandler(plain)('a1', { type: 'deposit', amount: 100 });
    // A log whose next append is overtaken by another writer's commit.
    let rival: AccountEvent | undefined;
    const racing: EventLog = {
      version: (stream, subject) => log.version(stream, subject),
      lastSequence: (stream) => log.lastSequence(stream),
      read: (stream, subject, range) => log.read(stream, subject, range),
      subscribe: (stream, subject, options) => log.subscribe(stream, subject, options),
      append: async (commit, expected) => {
        if (rival) await plain.append(await plain.load('a1'), [rival]);
        rival = undefined;
        return log.append(commit, expected);
      },
    };
    const handle = commandHandler(new AggregateStore(plain.aggregate, { log: racing }));

    rival = { type: 'account.deposited', data: { amount: 7, currency: 'EUR' } };
    const result = await handle('a1', { type: 'deposit', amount: 5 });
    assert.equal(result.attempts, 2);
    assert.equal(result.state.balance, 112);
    assert.deepEqual(result.state, (await plain.load('a1')).state);

    // decided on balance 112 first, then on 42 after the reload: the second decision rejects
    rival = { type: 'account.withdrawn', data: { amount: 70, transactionId: 'r' } };
    await assert.rejects(handle('a1', { type: 'withdraw', amount: 50 }), (e: unknown) => {
      return e instanceof DomainError && e.code === 'INSUFFICIENT_FUNDS';
    });
    assert.equal((await plain.load('a1')).state.balance, 42);
  });

  test('commands for one instance through one handler run one after the other: no conflict to retry', async () => {
    // Found by the chaos harness on a 3-node cluster: nats-server 2.9 may accept two concurrent appends
    // expecting the same subject sequence, so a process must not race itself.
    const { store } = await accountFixture(nc);
    const handle = commandHandler(store());
    await handle('s1', { type: 'open', owner: 'sam' });
    const results = await Promise.all(
      Array.from({ length: 5 }, () => handle('s1', { type: 'deposit', amount: 10 })),
    );
    assert.deepEqual(
      results.map((r) => r.attempts),
      [1, 1, 1, 1, 1],
      'each decided on the state the previous one left',
    );
    assert.deepEqual(
      results.map((r) => r.state.balance),
      [10, 20, 30, 40, 50],
    );
    // Other instances are not held up by it.
    const [other] = await Promise.all([
      handle('s2', { type: 'open', owner: 'tim' }),
      handle('s1', { type: 'deposit', amount: 1 }),
    ]);
    assert.equal(other.attempts, 1);
  });

  test('retries are bounded: a writer that always loses reports how many attempts it made', async () => {
    const { log, store } = await accountFixture(nc);
    const plain = store();
    await commandHandler(plain)('a1', { type: 'open', owner: 'ada' });
    const alwaysOvertaken: EventLog = {
      version: (stream, subject) => log.version(stream, subject),
      lastSequence: (stream) => log.lastSequence(stream),
      read: (stream, subject, range) => log.read(stream, subject, range),
      subscribe: (stream, subject, options) => log.subscribe(stream, subject, options),
      append: async (commit, expected) => {
        await plain.append(await plain.load('a1'), [
          { type: 'account.deposited', data: { amount: 1, currency: 'EUR' } },
        ]);
        return log.append(commit, expected);
      },
    };
    const handle = commandHandler(new AggregateStore(plain.aggregate, { log: alwaysOvertaken }), {
      maxAttempts: 3,
    });
    await assert.rejects(
      handle('a1', { type: 'deposit', amount: 10 }),
      (e: unknown) => e instanceof WrongExpectedVersionError && e.attempts === 3,
    );
    assert.equal((await plain.load('a1')).state.balance, 3);
  });

  test('a decision of two events is one message: readers see both or neither', async () => {
    const { account, log, store } = await accountFixture(nc);
    const handle = commandHandler(store(), { newId: () => 'tx-1' });
    await handle('a1', { type: 'open', owner: 'ada' });
    await handle('a1', { type: 'deposit', amount: 5_000 });
    const before = (await log.jsm.streams.info(account.stream)).state.messages;
    const result = await handle('a1', { type: 'withdraw', amount: 2_000 });
    assert.deepEqual(
      result.events.map((e) => e.type),
      ['account.withdrawn', 'account.fee-charged'],
    );
    assert.equal((await log.jsm.streams.info(account.stream)).state.messages, before + 1);
    const raw = await log.jsm.streams.getMessage(account.stream, { seq: result.version });
    assert.equal(raw?.header.get('ce-type'), CommitContract.type);
    const loaded = await store().load('a1');
    assert.equal(loaded.state.balance, 3_000 - FEE);
    assert.equal(loaded.eventCount, 4);
  });

  test('a rejected command appends nothing', async () => {
    const { account, log, store } = await accountFixture(nc);
    const handle = commandHandler(store());
    await handle('a1', { type: 'open', owner: 'ada' });
    await assert.rejects(handle('a1', { type: 'withdraw', amount: 1 }), (e: unknown) => {
      return e instanceof DomainError && e.code === 'INSUFFICIENT_FUNDS';
    });
    assert.equal((await log.jsm.streams.info(account.stream)).state.messages, 1);
  });

  test('a re-sent command with the same commit id is stored once', async () => {
    const { account, log, store } = await accountFixture(nc);
    const handle = commandHandler(store());
    await handle('a1', { type: 'open', owner: 'ada' });
    const first = await handle('a1', { type: 'deposit', amount: 5 }, { commitId: 'cmd-42' });
    const again = await handle('a1', { type: 'deposit', amount: 5 }, { commitId: 'cmd-42' });
    assert.equal(first.duplicate, false);
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.events, []);
    assert.equal(again.version, first.version);
    assert.equal(again.state.balance, 5);
    assert.equal((await log.jsm.streams.info(account.stream)).state.messages, 2);
  });

  test('snapshots: written every N events, used on load, same state as a full replay', async () => {
    const fixture = await accountFixture(nc);
    const snapshots = await fixture.snapshots();
    const withSnapshots = fixture.store({ snapshots, snapshotEvery: 3 });
    const handle = commandHandler(withSnapshots);
    await handle('a1', { type: 'open', owner: 'ada' });
    for (let i = 1; i <= 6; i++) await handle('a1', { type: 'deposit', amount: i });

    const snapshot = await snapshots.get(fixture.account.subject('a1'));
    assert.equal(snapshot?.eventCount, 6);
    assert.equal(snapshot?.snapshotVersion, 1);
    // a fresh store (another process): no in-memory state, the KV snapshot is used
    const fast = await fixture.store({ snapshots }).load('a1');
    const full = await fixture.store().load('a1');
    assert.equal(fast.fromVersion, snapshot?.version);
    assert.equal(fast.replayedCommits, 1);
    assert.equal(full.replayedCommits, 7);
    assert.deepEqual(fast.state, full.state);
    assert.equal(fast.version, full.version);
    assert.equal(fast.eventCount, 7);
  });

  test('snapshots: a new snapshotVersion ignores old snapshots and writes its own', async () => {
    const fixture = await accountFixture(nc);
    const snapshots = await fixture.snapshots();
    const handle = commandHandler(fixture.store({ snapshots, snapshotEvery: 2 }));
    await handle('a1', { type: 'open', owner: 'ada' });
    await handle('a1', { type: 'deposit', amount: 10 });
    const subject = fixture.account.subject('a1');
    assert.equal((await snapshots.get(subject))?.snapshotVersion, 1);

    const changed = () => fixture.store({ snapshots, snapshotEvery: 2, snapshotVersion: 2 });
    const loaded = await changed().load('a1');
    assert.equal(loaded.fromVersion, undefined);
    assert.equal(loaded.replayedCommits, 2);
    await commandHandler(changed())('a1', { type: 'deposit', amount: 1 });
    await commandHandler(changed())('a1', { type: 'deposit', amount: 1 });
    assert.equal((await snapshots.get(subject))?.snapshotVersion, 2);
    assert.equal((await changed().load('a1')).replayedCommits, 0);

    // unreadable snapshot: ignored, the load replays everything
    await snapshots.kv.put(subject, '{"not":"a snapshot"');
    const afterCorruption = await changed().load('a1');
    assert.equal(afterCorruption.fromVersion, undefined);
    assert.equal(afterCorruption.state.balance, 12);
  });

  test('the in-memory state only replays what other writers appended since', async () => {
    const { store } = await accountFixture(nc);
    const mine = store();
    const theirs = store();
    await commandHandler(mine)('a1', { type: 'open', owner: 'ada' });
    await commandHandler(theirs)('a1', { type: 'deposit', amount: 5 });
    await commandHandler(theirs)('a1', { type: 'deposit', amount: 6 });
    const loaded = await mine.load('a1');
    assert.equal(loaded.replayedCommits, 2);
    assert.equal(loaded.state.balance, 11);
    const again = await mine.load('a1');
    assert.equal(again.replayedCommits, 0);
    assert.deepEqual(again.state, (await store({ cacheSize: 0 }).load('a1')).state);
  });

  test('the command handler decides first on what it last knew, without asking the log for the version', async () => {
    const { log, store } = await accountFixture(nc);
    let versionReads = 0;
    const counting: EventLog = {
      version: (stream, subject) => {
        versionReads++;
        return log.version(stream, subject);
      },
      lastSequence: (stream) => log.lastSequence(stream),
      read: (stream, subject, range) => log.read(stream, subject, range),
      subscribe: (stream, subject, options) => log.subscribe(stream, subject, options),
      append: (commit, expected) => log.append(commit, expected),
    };
    const mine = new AggregateStore(store().aggregate, { log: counting });
    const handle = commandHandler(mine);
    // An instance it never saw is taken to be new; after that, the state its appends left.
    assert.equal((await handle('a1', { type: 'open', owner: 'ada' })).attempts, 1);
    assert.equal((await handle('a1', { type: 'deposit', amount: 10 })).state.balance, 10);
    assert.equal(versionReads, 0);

    // Another writer appends: the guess (balance 10) is refused by the expected version, and the
    // command is decided again on the state loaded from the log.
    const theirs = commandHandler(store());
    await theirs('a1', { type: 'deposit', amount: 5 });
    const deposited = await handle('a1', { type: 'deposit', amount: 1 });
    assert.equal(deposited.state.balance, 16);
    assert.equal(deposited.attempts, 1, 'the refused guess is not an attempt');
    assert.equal(versionReads, 1);

    // A guess that a rule refuses is decided again on the loaded state, where the rule may allow it.
    await theirs('a1', { type: 'deposit', amount: 100 });
    const withdrawn = await handle('a1', { type: 'withdraw', amount: 50 });
    assert.equal(withdrawn.state.balance, 66);
    assert.equal(versionReads, 2);
    // An instance opened elsewhere: the guess "new" decides nothing for a deposit, the log says it exists.
    await theirs('b1', { type: 'open', owner: 'bob' });
    assert.equal((await handle('b1', { type: 'deposit', amount: 3 })).state.balance, 3);
    // Opening an instance opened elsewhere: appended on the guess "new", refused (expected version
    // 0), decided again on the loaded state, where the rule refuses it.
    await theirs('c1', { type: 'open', owner: 'cy' });
    await assert.rejects(handle('c1', { type: 'open', owner: 'cy' }), (e: unknown) => {
      return e instanceof DomainError && e.code === 'ACCOUNT_EXISTS';
    });
    assert.deepEqual((await store({ cacheSize: 0 }).load('a1')).state, withdrawn.state);
  });

  test('events stored by older code (v1) are upcast on load', async () => {
    const { account, store } = await accountFixture(nc);
    const s = store();
    await commandHandler(s)('a1', { type: 'open', owner: 'ada' });
    const oldCode = new JetStreamPublisher(jetstream(nc), { source: 'orderflow/old-code' });
    await oldCode.publish(MoneyDepositedV1, { amount: 30 }, { subject: account.subject('a1'), about: 'a1' });
    const loaded = await s.load('a1');
    assert.equal(loaded.state.balance, 30);
  });

  test('bad stream content fails the load with a typed error naming subject and sequence', async () => {
    const { account, store } = await accountFixture(nc);
    const s = store();
    const js = jetstream(nc);
    await commandHandler(s)('a1', { type: 'open', owner: 'ada' });
    const subject = account.subject('a1');
    const bad = await js.publish(subject, 'not json', {
      headers: envelopeHeaders(createEnvelope({ type: AccountOpened.type, source: 'foreign', data: null })),
    });
    await assert.rejects(s.load('a1'), (e: unknown) => {
      assert.ok(e instanceof EventDecodeError);
      assert.equal(e.code, 'UNDECODABLE_EVENT');
      assert.equal(e.subject, subject);
      assert.equal(e.sequence, bad.seq);
      return true;
    });

    await commandHandler(s)('b1', { type: 'open', owner: 'bob' });
    const h = natsHeaders();
    for (const [k, v] of envelopeHeaders(
      createEnvelope({ type: 'account.frozen.v1', source: 'x', data: {} }),
    )) {
      h.set(k, v[0] ?? '');
    }
    const unknown = await js.publish(account.subject('b1'), '{}', { headers: h });
    await assert.rejects(
      commandHandler(s)('b1', { type: 'deposit', amount: 1 }),
      (e: unknown) =>
        e instanceof EventDecodeError &&
        e.code === 'UNKNOWN_EVENT_TYPE' &&
        e.sequence === unknown.seq &&
        e.type === 'account.frozen.v1',
    );
  });

  test('an id that cannot be a subject token is refused before any I/O', async () => {
    const { store } = await accountFixture(nc);
    await assert.rejects(store().load('a.b'), InvalidAggregateIdError);
    await assert.rejects(store().load('*'), InvalidAggregateIdError);
  });
});
