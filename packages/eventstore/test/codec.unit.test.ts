import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createEnvelope, encodeData, envelopeHeaders, type MessageContract } from '@orderflow/messaging';
import { CommitContract, EventCodec, EventDecodeError, EventStoreError } from '../src/mod.ts';
import type { StoredCommit } from '../src/mod.ts';
import {
  AccountOpened,
  accountAggregate,
  MoneyDeposited,
  MoneyDepositedV1,
  MoneyWithdrawn,
} from './fixtures/account.ts';

const { codec } = accountAggregate('ACCOUNTS');
let sequence = 0;

function stored(type: string, data: unknown, id = `c${++sequence}`): StoredCommit {
  const envelope = createEnvelope({ type, source: 'test', data, id, subject: 'a1' });
  return {
    stream: 'ACCOUNTS',
    subject: 'accounts.a1',
    sequence,
    headers: envelopeHeaders(envelope),
    body: new TextEncoder().encode(encodeData(data)),
  };
}

function decodeError(commit: StoredCommit): EventDecodeError {
  try {
    codec.decode(commit, 'a1');
  } catch (error) {
    assert.ok(error instanceof EventDecodeError, `expected EventDecodeError, got ${String(error)}`);
    return error;
  }
  assert.fail('decode did not throw');
}

describe('event codec', () => {
  test('a one-event commit decodes to its domain event with metadata', () => {
    const [event, ...rest] = codec.decode(
      stored(AccountOpened.type, { owner: 'ada', openedAt: 't' }, 'x1'),
      'a1',
    );
    assert.equal(rest.length, 0);
    assert.deepEqual(
      { type: event?.type, data: event?.data },
      {
        type: 'account.opened',
        data: { owner: 'ada', openedAt: 't' },
      },
    );
    assert.equal(event?.metadata.id, 'x1');
    assert.equal(event?.metadata.storedType, 'account.opened.v1');
    assert.equal(event?.metadata.aggregateId, 'a1');
  });

  test('given a v1 deposit, when decoded by v2 code, then it is upcast with the default currency', () => {
    const [event] = codec.decode(stored(MoneyDepositedV1.type, { amount: 7 }), 'a1');
    assert.deepEqual(event?.data, { amount: 7, currency: 'EUR' });
    assert.equal(event?.type, 'account.deposited');
    assert.equal(event?.metadata.storedType, 'account.deposited.v1');
  });

  test('a multi-event commit decodes every event in order with derived ids', () => {
    const commit = stored(
      CommitContract.type,
      {
        events: [
          { type: MoneyDepositedV1.type, data: { amount: 3 } },
          { type: MoneyWithdrawn.type, data: { amount: 2, transactionId: 't' } },
        ],
      },
      'multi',
    );
    const events = codec.decode(commit, 'a1');
    assert.deepEqual(
      events.map((e) => [e.type, e.metadata.id, e.metadata.index, e.metadata.commitSize]),
      [
        ['account.deposited', 'multi:0', 0, 2],
        ['account.withdrawn', 'multi:1', 1, 2],
      ],
    );
  });

  test('an unknown type is a typed error naming subject and sequence', () => {
    const commit = stored('account.frozen.v1', {});
    const error = decodeError(commit);
    assert.equal(error.code, 'UNKNOWN_EVENT_TYPE');
    assert.equal(error.subject, 'accounts.a1');
    assert.equal(error.sequence, commit.sequence);
    assert.equal(error.type, 'account.frozen.v1');
    assert.match(error.message, new RegExp(`accounts\\.a1 #${commit.sequence}`));
  });

  test('a future version of a known event is unknown to this code', () => {
    assert.equal(decodeError(stored('account.deposited.v3', { amount: 1 })).code, 'UNKNOWN_EVENT_TYPE');
  });

  test('a payload its contract rejects is INVALID_EVENT, also before upcasting', () => {
    assert.equal(
      decodeError(stored(MoneyDeposited.type, { amount: -1, currency: 'EUR' })).code,
      'INVALID_EVENT',
    );
    assert.equal(decodeError(stored(MoneyDepositedV1.type, { amount: 'ten' })).code, 'INVALID_EVENT');
  });

  test('a body that is not JSON, or a message without CloudEvents headers, is UNDECODABLE_EVENT', () => {
    const notJson = { ...stored(AccountOpened.type, {}), body: new TextEncoder().encode('{oops') };
    assert.equal(decodeError(notJson).code, 'UNDECODABLE_EVENT');
    const bare = { ...stored(AccountOpened.type, {}), headers: undefined };
    assert.equal(decodeError(bare).code, 'UNDECODABLE_EVENT');
    assert.equal(decodeError(stored(CommitContract.type, { events: 'nope' })).code, 'UNDECODABLE_EVENT');
  });

  test('encode validates the payload against the current contract', () => {
    assert.throws(
      () => codec.encode({ type: 'account.deposited', data: { amount: 0, currency: 'EUR' } }),
      /invalid payload/,
    );
    assert.equal(
      codec.encode({ type: 'account.deposited', data: { amount: 1, currency: 'EUR' } }).contract,
      MoneyDeposited,
    );
  });

  test('configurations that cannot decode are refused up front', () => {
    const config = (events: MessageContract[], upcasters: ConstructorParameters<typeof EventCodec>[1]) => {
      assert.throws(
        () => new EventCodec(events, upcasters),
        (e: unknown) => e instanceof EventStoreError && e.code === 'INVALID_CONFIG',
      );
    };
    config([MoneyDepositedV1, MoneyDeposited], []);
    // an upcaster that leads nowhere current
    config([AccountOpened], [{ from: MoneyDepositedV1, to: MoneyDeposited, upcast: (d) => d }]);
  });
});

describe('event codec with a producer', () => {
  const owned = new EventCodec([AccountOpened], [], { producer: 'orderflow/bank' });
  const commit = (source: string): StoredCommit => {
    const data = { owner: 'ada', openedAt: 't' };
    const envelope = createEnvelope({ type: AccountOpened.type, source, data, id: `p-${source}` });
    return {
      stream: 'ACCOUNTS',
      subject: 'accounts.a1',
      sequence: 1,
      headers: envelopeHeaders(envelope),
      body: new TextEncoder().encode(encodeData(data)),
    };
  };

  test("given a commit from the aggregate's producer, then it decodes", () => {
    assert.equal(owned.decode(commit('orderflow/bank'), 'a1')[0]?.type, 'account.opened');
  });

  test('given a commit from another ce-source, then it is FOREIGN_PRODUCER, not an event of the aggregate', () => {
    assert.throws(
      () => owned.decode(commit('orderflow/impostor'), 'a1'),
      (error: unknown) =>
        error instanceof EventDecodeError &&
        error.code === 'FOREIGN_PRODUCER' &&
        /orderflow\/impostor is not the aggregate's producer orderflow\/bank/.test(error.message),
    );
  });
});
