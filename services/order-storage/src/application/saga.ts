import { ContractsError, eventIdFor, OrderConfirmed, OrderingErrorCode } from '@orderflow/contracts';
import { DomainError, InvalidAggregateIdError } from '@orderflow/eventstore';
import { PermanentError, type Envelope, type MessageContract } from '@orderflow/messaging';
import type { OrderFacts } from '../adapters/sql-db.ts';
import { admitFact, storedFact, verdictNeedsCurrentStatus, type ReportedFact } from '../domain/facts.ts';
import type { OrderCommand, OrderState } from '../domain/order.ts';
import type { OrderStorageDeps } from './deps.ts';

/** The saga rules of order-storage: how what other services report moves the order. */
export interface SagaRules {
  /**
   * Records a fact another service reports about an order, with the event in the order's history, if
   * it can be true of the order (see `admitFact`); one that cannot, or one about an unknown order, is
   * dead-lettered with its code.
   */
  readonly record: (orderId: string, reported: ReportedFact, event: Envelope) => Promise<OrderFacts>;
  /** Keeps an event that establishes no fact in the order's history (before acting on it). */
  readonly remember: (orderId: string, event: Envelope) => Promise<void>;
  /**
   * Runs a command decided by an incoming event, with the deterministic commit id of the event it
   * `produces`; a rule that says no dead-letters the event with its reason.
   */
  readonly act: (
    orderId: string,
    command: OrderCommand,
    produces: MessageContract,
    causedBy: Envelope,
  ) => Promise<void>;
  /** `order.confirmed` once payment, invoice and courier are all known. */
  readonly confirmIfComplete: (facts: OrderFacts, event: Envelope) => Promise<void>;
}

const permanent = (event: Envelope, orderId: string, error: DomainError | InvalidAggregateIdError) =>
  new PermanentError(`${event.type} for order ${orderId}: ${error.message}`, {
    cause: error,
    code: error.code,
  });

/** What a fact that cannot be recorded is dead-lettered with; other errors are retried. */
const refusal = (event: Envelope, orderId: string, error: unknown): unknown => {
  if (error instanceof DomainError) return permanent(event, orderId, error);
  if (error instanceof ContractsError || error instanceof InvalidAggregateIdError) {
    return new PermanentError(error.message, { cause: error, code: OrderingErrorCode.InvalidId });
  }
  return error;
};

export function sagaRules(deps: OrderStorageDeps): SagaRules {
  const { store, db, orders, handle, history } = deps;
  const act: SagaRules['act'] = async (orderId, command, produces, causedBy) => {
    try {
      await handle(orderId, command, { commitId: eventIdFor(produces, orderId), causedBy });
    } catch (error) {
      if (error instanceof DomainError || error instanceof InvalidAggregateIdError) {
        throw permanent(causedBy, orderId, error);
      }
      throw error;
    }
  };
  return {
    act,
    async record(orderId, reported, event) {
      let state: OrderState;
      try {
        // The state this process last knew is enough where the verdict does not read the current
        // status (it saves the log's version round trip); a guess of an order it never saw is not.
        const known = verdictNeedsCurrentStatus(reported.kind) ? undefined : orders.unverified(orderId);
        state = known && known.state.status !== 'new' ? known.state : (await orders.load(orderId)).state;
      } catch (error) {
        throw refusal(event, orderId, error);
      }
      const judge = (facts: OrderFacts | undefined): void => {
        try {
          admitFact(state, facts, reported);
        } catch (error) {
          throw refusal(event, orderId, error);
        }
      };
      // An order that was never placed is refused before anything is written.
      if (state.status === 'new') judge(undefined);
      // Judged on the facts as they are when this one is written: the order's row stays locked.
      return store.transaction(async (tx) => {
        judge(await db.lockFacts(orderId, tx));
        const facts = await db.recordFact(orderId, storedFact(reported), tx);
        await history.record(tx, orderId, event);
        return facts;
      });
    },
    async remember(orderId, event) {
      await store.transaction((tx) => history.record(tx, orderId, event));
    },
    async confirmIfComplete(facts, event) {
      if (facts.paymentId && facts.invoiceNumber && facts.courierId) {
        await act(
          facts.orderId,
          {
            type: 'confirm',
            paymentId: facts.paymentId,
            invoiceNumber: facts.invoiceNumber,
            courierId: facts.courierId,
          },
          OrderConfirmed,
          event,
        );
      }
    },
  };
}
