import assert from 'node:assert/strict';
import { fold } from './aggregate.ts';
import { DomainError } from './errors.ts';
import type { AggregateDefinition, DecideContext, DomainEvent } from './types.ts';

/** The outcome checks of a given/when specification. */
export interface DeciderThen<S, E extends DomainEvent> {
  /** `decide` returned exactly `events`. */
  then(events: readonly E[]): void;
  /** `decide` threw a {@link DomainError} with `code`. */
  thenRejects(code: string): void;
  /** The state after the given events and the decided ones deep-equals `state`. */
  thenState(state: S): void;
}

/**
 * Given/when/then for an aggregate's pure functions, without I/O:
 * `spec.given([opened]).when(withdraw).then([withdrawn])`. The context is fixed (a constant clock
 * and counting ids, `id-1`, `id-2`, …) unless overridden.
 */
export function deciderSpec<S, C, E extends DomainEvent>(
  aggregate: AggregateDefinition<S, C, E>,
  context: { now?: Date; ids?: () => string } = {},
) {
  return {
    given(events: readonly E[]) {
      return {
        when(command: C): DeciderThen<S, E> {
          let counter = 0;
          const decideContext: DecideContext = {
            now: context.now ?? new Date('2025-01-01T00:00:00.000Z'),
            newId: context.ids ?? (() => `id-${++counter}`),
          };
          const before = fold(aggregate, aggregate.initialState(), events);
          const decide = () => aggregate.decide(command, before, decideContext);
          return {
            then: (expected) => assert.deepStrictEqual(decide(), expected),
            thenRejects: (code) =>
              assert.throws(decide, (error: unknown) => {
                assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
                assert.equal(error.code, code);
                return true;
              }),
            thenState: (state) => assert.deepStrictEqual(fold(aggregate, before, decide()), state),
          };
        },
      };
    },
  };
}
