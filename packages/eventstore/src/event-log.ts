import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  ConcurrencyError,
  JetStreamPublisher,
  PublishError,
  PULL_EXPIRES_MS,
  type EventPublisher,
  type MessageContract,
} from '@orderflow/messaging';
import { CommitContract } from './codec.ts';
import {
  AppendError,
  EventStoreError,
  EventStoreErrorCode,
  ReadError,
  WrongExpectedVersionError,
} from './errors.ts';
import type { AppendReceipt, EventLog, NewCommit, StoredCommit } from './types.ts';

export interface JetStreamEventLogOptions {
  /** `ce-source` of every commit, e.g. `orderflow/order-storage`. */
  source: string;
  /** Messages pulled per request while replaying (default 512). */
  readBatch?: number;
}

/**
 * {@link EventLog} on JetStream. A commit is one message: a plain CloudEvent when it holds one event,
 * an `eventstore.commit.v1` CloudEvent listing the events otherwise. Appends go through the messaging
 * toolkit's publisher (payload validation, `Nats-Msg-Id` = commit id, retries after a lost ack).
 * Reads use an ordered consumer that starts at the requested sequence.
 */
export class JetStreamEventLog implements EventLog {
  readonly #readBatch: number;

  constructor(
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly publisher: EventPublisher,
    options: Pick<JetStreamEventLogOptions, 'readBatch'> = {},
  ) {
    this.#readBatch = options.readBatch ?? 512;
  }

  static async create(nc: NatsConnection, options: JetStreamEventLogOptions): Promise<JetStreamEventLog> {
    const js = jetstream(nc);
    return new JetStreamEventLog(
      js,
      await jetstreamManager(nc),
      new JetStreamPublisher(js, options),
      options,
    );
  }

  async version(stream: string, subject: string): Promise<number> {
    try {
      const last = await this.jsm.streams.getMessage(stream, { last_by_subj: subject });
      return last?.seq ?? 0;
    } catch (cause) {
      throw new ReadError(
        stream,
        `cannot read the last sequence of ${subject}: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
  }

  async lastSequence(stream: string): Promise<number> {
    try {
      return (await this.jsm.streams.info(stream)).state.last_seq;
    } catch (cause) {
      throw new ReadError(stream, `cannot read the stream's state: ${(cause as Error).message}`, { cause });
    }
  }

  async append(commit: NewCommit, expectedVersion: number): Promise<AppendReceipt> {
    const [first, ...rest] = commit.events;
    if (!first) throw new EventStoreError(EventStoreErrorCode.Config, `${commit.subject}: empty commit`);
    let contract: MessageContract;
    let data: unknown;
    if (rest.length === 0) {
      ({ contract, data } = first);
    } else {
      contract = CommitContract;
      data = {
        events: commit.events.map((e) => ({ type: e.contract.type, data: e.contract.parse(e.data) })),
      };
    }
    const commitId = commit.commitId ?? randomUUID();
    try {
      const receipt = await this.publisher.publish(contract, data, {
        subject: commit.subject,
        id: commitId,
        about: commit.aggregateId,
        expectedLastSubjectSequence: expectedVersion,
        ...(commit.causedBy && { causedBy: commit.causedBy }),
      });
      return { version: receipt.seq, commitId, duplicate: receipt.duplicate };
    } catch (error) {
      if (error instanceof ConcurrencyError) {
        throw new WrongExpectedVersionError(commit.subject, expectedVersion, { cause: error });
      }
      if (error instanceof PublishError)
        throw new AppendError(commit.subject, error.message, { cause: error });
      throw error;
    }
  }

  async *read(
    stream: string,
    subject: string,
    range: { fromSequence: number; toSequence: number },
  ): AsyncGenerator<StoredCommit & { readonly pending: number }> {
    if (range.toSequence < range.fromSequence) return;
    const fail = (cause: unknown): ReadError =>
      new ReadError(stream, `cannot replay ${subject}: ${(cause as Error).message}`, { cause });
    let consumer;
    try {
      consumer = await this.js.consumers.get(stream, {
        filter_subjects: subject,
        opt_start_seq: Math.max(1, range.fromSequence),
      });
    } catch (cause) {
      throw fail(cause);
    }
    // The consumer's pending count at creation tells whether anything is there to wait for.
    if ((await consumer.info(true)).num_pending === 0) {
      void consumer.delete().catch(() => undefined);
      return;
    }
    const span = range.toSequence - range.fromSequence + 1;
    const messages = await consumer.consume({
      max_messages: Math.min(span, this.#readBatch),
      expires: PULL_EXPIRES_MS,
    });
    try {
      for await (const m of messages) {
        if (m.seq > range.toSequence) break;
        yield {
          stream,
          subject: m.subject,
          sequence: m.seq,
          headers: m.headers,
          body: m.data,
          pending: m.info.pending,
        };
        // Nothing left that existed when reading started: later messages are past `toSequence`.
        if (m.seq >= range.toSequence || m.info.pending === 0) break;
      }
    } catch (cause) {
      throw fail(cause);
    } finally {
      messages.stop();
      void consumer.delete().catch(() => undefined);
    }
  }
}
