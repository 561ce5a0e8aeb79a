import type { StreamDeclaration } from '@orderflow/messaging';
import { EventCodec } from './codec.ts';
import { EventStoreError, EventStoreErrorCode, InvalidAggregateIdError } from './errors.ts';
import type { AggregateDefinition, DomainEvent } from './types.ts';

const ID = /^[A-Za-z0-9_-]{1,128}$/;
const TOKEN = /^[A-Za-z0-9_-]+$/;

/** An aggregate definition with its subject builder and event codec. */
export interface Aggregate<S, C, E extends DomainEvent> extends AggregateDefinition<S, C, E> {
  readonly codec: EventCodec<E>;
  /** Subject filter of every instance: `<subjectPrefix>.*`. */
  readonly subjects: string;
  /** Subject of one instance; throws {@link InvalidAggregateIdError} for an id that is not a token. */
  subject(id: string): string;
  /** The instance id of one of this aggregate's subjects. */
  idOf(subject: string): string;
  /** The stream to provision (event-log defaults from the messaging toolkit: no delete, no purge). */
  streamDeclaration(options?: Omit<StreamDeclaration, 'name' | 'subjects'>): StreamDeclaration;
}

/** Checks the definition once and derives its codec and subjects. */
export function defineAggregate<S, C, E extends DomainEvent>(
  definition: AggregateDefinition<S, C, E>,
): Aggregate<S, C, E> {
  if (!TOKEN.test(definition.stream) || !TOKEN.test(definition.subjectPrefix)) {
    throw new EventStoreError(
      EventStoreErrorCode.Config,
      `${definition.name}: stream and subjectPrefix must match [A-Za-z0-9_-]+`,
    );
  }
  if (!Number.isInteger(definition.snapshotVersion) || definition.snapshotVersion < 1) {
    throw new EventStoreError(EventStoreErrorCode.Config, `${definition.name}: snapshotVersion must be ≥ 1`);
  }
  const prefix = `${definition.subjectPrefix}.`;
  return {
    ...definition,
    codec: new EventCodec<E>(definition.events, definition.upcasters, { producer: definition.producer }),
    subjects: `${prefix}*`,
    subject(id) {
      if (!ID.test(id)) throw new InvalidAggregateIdError(id);
      return prefix + id;
    },
    idOf: (subject) => (subject.startsWith(prefix) ? subject.slice(prefix.length) : subject),
    streamDeclaration: (options = {}) => ({
      ...options,
      name: definition.stream,
      subjects: [`${prefix}*`],
    }),
  };
}

/** Applies `events` to `state` in order (the aggregate's state after them). */
export function fold<S, E extends DomainEvent>(
  aggregate: Pick<AggregateDefinition<S, unknown, E>, 'evolve'>,
  state: S,
  events: Iterable<E>,
): S {
  let current = state;
  for (const event of events) current = aggregate.evolve(current, event);
  return current;
}
