import { Type } from '@sinclair/typebox';
import {
  decodeEnvelope,
  defineEvent,
  ValidationError,
  type MessageContract,
  type PayloadOf,
} from '@orderflow/messaging';
import { EventDecodeError, EventStoreError, EventStoreErrorCode, type EventDecodeCode } from './errors.ts';
import type { DomainEvent, RecordedEvent, StoredCommit, Upcaster } from './types.ts';

/**
 * The message of a decision with two or more events. A one-event decision is stored as a plain
 * CloudEvent of that event's type, so any consumer of the stream reads it as usual.
 */
export const CommitContract = defineEvent({
  name: 'eventstore.commit',
  description: 'Several events decided together, stored as one message so that they are all-or-nothing.',
  schema: Type.Object({
    events: Type.Array(Type.Object({ type: Type.String({ minLength: 1 }), data: Type.Unknown() }), {
      minItems: 2,
    }),
  }),
});

/** Declares that events stored as `from` are read as `to`, with a typed conversion. */
export function defineUpcaster<F extends MessageContract, T extends MessageContract>(
  from: F,
  to: T,
  upcast: (data: PayloadOf<F>) => PayloadOf<T>,
): Upcaster {
  if (from.name !== to.name || from.version >= to.version) {
    throw new EventStoreError(
      EventStoreErrorCode.Config,
      `upcaster ${from.type} → ${to.type} must go to a later version of the same event`,
    );
  }
  return { from, to, upcast: (data) => upcast(data as PayloadOf<F>) };
}

class PayloadError extends Error {
  constructor(
    readonly code: EventDecodeCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Converts between domain events and what is stored: looks up contracts by name (encode) and by
 * `ce-type` (decode), validates payloads, and upcasts older versions to the current one.
 */
export class EventCodec<E extends DomainEvent = DomainEvent> {
  readonly #byName = new Map<string, MessageContract>();
  readonly #byType = new Map<string, MessageContract>();
  readonly #upcasters = new Map<string, Upcaster>();

  /**
   * `options.producer`: the only `ce-source` whose commits are read (see `AggregateDefinition.producer`).
   */
  constructor(
    events: readonly MessageContract[],
    upcasters: readonly Upcaster[] = [],
    private readonly options: { producer?: string | undefined } = {},
  ) {
    for (const contract of events) {
      if (this.#byName.has(contract.name)) {
        throw new EventStoreError(
          EventStoreErrorCode.Config,
          `two current versions of ${contract.name}: list one contract per event name`,
        );
      }
      this.#byName.set(contract.name, contract);
      this.#byType.set(contract.type, contract);
    }
    for (const upcaster of upcasters) {
      if (this.#upcasters.has(upcaster.from.type) || this.#byType.has(upcaster.from.type)) {
        throw new EventStoreError(
          EventStoreErrorCode.Config,
          `${upcaster.from.type} is current or already has an upcaster`,
        );
      }
      this.#upcasters.set(upcaster.from.type, upcaster);
    }
    for (const upcaster of upcasters) this.#chainEnd(upcaster.from.type);
  }

  #chainEnd(type: string): MessageContract {
    let upcaster = this.#upcasters.get(type);
    while (upcaster) {
      const next = upcaster.to.type;
      if (this.#byType.has(next)) return this.#byType.get(next) as MessageContract;
      upcaster = this.#upcasters.get(next);
    }
    throw new EventStoreError(
      EventStoreErrorCode.Config,
      `upcasters from ${type} do not lead to a current event contract`,
    );
  }

  /** The current contract of `event.type`; validates `event.data` against it. */
  encode(event: E): { contract: MessageContract; data: unknown } {
    const contract = this.#byName.get(event.type);
    if (!contract) {
      throw new EventStoreError(EventStoreErrorCode.Config, `no contract for event type "${event.type}"`);
    }
    return { contract, data: contract.parse(event.data) };
  }

  /** Every `ce-type` this codec reads (current versions and upcast ones). */
  get readableTypes(): string[] {
    return [...this.#byType.keys(), ...this.#upcasters.keys()];
  }

  #decodePayload(type: string, data: unknown): E {
    let current = type;
    let payload = data;
    for (let upcaster = this.#upcasters.get(current); upcaster; upcaster = this.#upcasters.get(current)) {
      payload = upcaster.upcast(this.#parse(upcaster.from, payload));
      current = upcaster.to.type;
    }
    const contract = this.#byType.get(current);
    if (!contract)
      throw new PayloadError(EventStoreErrorCode.UnknownEventType, `unknown event type "${type}"`);
    return { type: contract.name, data: this.#parse(contract, payload) } as E;
  }

  #parse(contract: MessageContract, data: unknown): unknown {
    try {
      return contract.parse(data);
    } catch (cause) {
      if (cause instanceof ValidationError) {
        throw new PayloadError(EventStoreErrorCode.InvalidEvent, cause.message, { cause });
      }
      throw cause;
    }
  }

  /**
   * Decodes one stored commit into its events, upcast and validated. Throws {@link EventDecodeError}
   * naming the stream, subject and sequence when the message is not a readable event of this codec.
   */
  decode(commit: StoredCommit, aggregateId: string): RecordedEvent<E>[] {
    const fail = (code: EventDecodeCode, reason: string, cause?: unknown, type?: string): never => {
      throw new EventDecodeError(code, commit.stream, commit.subject, commit.sequence, reason, {
        cause,
        ...(type !== undefined && { type }),
      });
    };
    let envelope;
    try {
      envelope = decodeEnvelope(commit.headers, commit.body);
    } catch (cause) {
      return fail(EventStoreErrorCode.UndecodableEvent, (cause as Error).message, cause);
    }
    let stored: { type: string; data: unknown }[];
    if (envelope.type === CommitContract.type) {
      if (!CommitContract.is(envelope.data)) {
        return fail(EventStoreErrorCode.UndecodableEvent, 'malformed commit', undefined, envelope.type);
      }
      stored = envelope.data.events;
    } else {
      stored = [{ type: envelope.type, data: envelope.data }];
    }
    const events = stored.map(({ type, data }, index) => {
      let event: E;
      try {
        event = this.#decodePayload(type, data);
      } catch (cause) {
        const code = cause instanceof PayloadError ? cause.code : EventStoreErrorCode.InvalidEvent;
        return fail(code, (cause as Error).message, cause, type);
      }
      return {
        ...event,
        metadata: {
          id: stored.length === 1 ? envelope.id : `${envelope.id}:${index}`,
          commitId: envelope.id,
          stream: commit.stream,
          subject: commit.subject,
          aggregateId,
          sequence: commit.sequence,
          index,
          commitSize: stored.length,
          storedType: type,
          time: envelope.time,
          correlationId: envelope.correlationId,
          causationId: envelope.causationId,
        },
      };
    });
    // Checked after the payload, so a malformed message keeps its own code whoever sent it.
    const producer = this.options.producer;
    if (producer !== undefined && envelope.source !== producer) {
      return fail(
        EventStoreErrorCode.ForeignProducer,
        `ce-source ${envelope.source} is not the aggregate's producer ${producer}`,
        undefined,
        envelope.type,
      );
    }
    return events;
  }
}
