import { describe, test } from 'node:test';
import { deciderSpec } from '../src/mod.ts';
import { accountAggregate, FEE, type AccountEvent } from './fixtures/account.ts';

const account = accountAggregate('ACCOUNTS');
const spec = deciderSpec(account, { now: new Date('2025-03-01T10:00:00.000Z') });

const opened: AccountEvent = {
  type: 'account.opened',
  data: { owner: 'ada', openedAt: '2025-03-01T10:00:00.000Z' },
};
const deposited = (amount: number): AccountEvent => ({
  type: 'account.deposited',
  data: { amount, currency: 'EUR' },
});

describe('account decide/evolve', () => {
  test('opening a new account records the owner and the injected time', () => {
    spec.given([]).when({ type: 'open', owner: 'ada' }).then([opened]);
  });

  test('an account cannot be opened twice', () => {
    spec.given([opened]).when({ type: 'open', owner: 'bob' }).thenRejects('ACCOUNT_EXISTS');
  });

  test('commands on an account that was never opened are rejected', () => {
    spec.given([]).when({ type: 'deposit', amount: 5 }).thenRejects('ACCOUNT_NOT_OPEN');
  });

  test('a small withdrawal is one event with an injected transaction id', () => {
    spec
      .given([opened, deposited(100)])
      .when({ type: 'withdraw', amount: 40 })
      .then([{ type: 'account.withdrawn', data: { amount: 40, transactionId: 'id-1' } }]);
  });

  test('a large withdrawal and its fee are decided together', () => {
    spec
      .given([opened, deposited(5_000)])
      .when({ type: 'withdraw', amount: 2_000 })
      .then([
        { type: 'account.withdrawn', data: { amount: 2_000, transactionId: 'id-1' } },
        { type: 'account.fee-charged', data: { amount: FEE, transactionId: 'id-1' } },
      ]);
  });

  test('the fee counts towards the funds needed', () => {
    spec
      .given([opened, deposited(2_001)])
      .when({ type: 'withdraw', amount: 2_000 })
      .thenRejects('INSUFFICIENT_FUNDS');
  });

  test('evolve folds deposits, withdrawals and fees into the balance', () => {
    spec
      .given([opened, deposited(5_000), deposited(10)])
      .when({ type: 'withdraw', amount: 2_000 })
      .thenState({ status: 'open', owner: 'ada', balance: 3_010 - FEE, movements: 4 });
  });

  test('an account with money on it cannot be closed', () => {
    spec
      .given([opened, deposited(1)])
      .when({ type: 'close' })
      .thenRejects('BALANCE_NOT_ZERO');
  });

  test('a closed account takes no more commands', () => {
    spec
      .given([opened, { type: 'account.closed', data: { closedAt: '2025-03-02T00:00:00.000Z' } }])
      .when({ type: 'deposit', amount: 1 })
      .thenRejects('ACCOUNT_NOT_OPEN');
  });
});
