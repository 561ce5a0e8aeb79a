import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  ConcurrencyError,
  JetStreamPublisher,
  PublishError,
  PULL_EXPIRES_MS,
  type EventPublisher,
} from '@orderflow/messaging';
import { commitPayload } from './commit-message.ts';
import { AppendError, ReadError, WrongExpectedVersionError } from './errors.ts';
import type { AppendReceipt, EventLog, LogSubscription, NewCommit, StoredCommit } from './types.ts';

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
    const { contract, data } = commitPayload(commit);
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

  subscribe(stream: string, subject: string, options: { fromSequence: number }): LogSubscription {
    let stopped = false;
    let stopMessages: (() => void) | undefined;
    const js = this.js;
    const batch = this.#readBatch;
    async function* commits(): AsyncGenerator<StoredCommit> {
      const fail = (cause: unknown): ReadError =>
        new ReadError(stream, `subscription to ${subject} failed: ${(cause as Error).message}`, { cause });
      let consumer;
      let messages;
      try {
        // An ordered consumer: recreated by nats.js on a gap or a missed heartbeat, so order holds.
        consumer = await js.consumers.get(stream, {
          filter_subjects: subject,
          opt_start_seq: Math.max(1, options.fromSequence),
        });
        messages = await consumer.consume({ max_messages: batch, expires: PULL_EXPIRES_MS });
      } catch (cause) {
        throw fail(cause);
      }
      stopMessages = () => messages.stop();
      if (stopped) messages.stop();
      try {
        for await (const m of messages) {
          if (stopped) break;
          yield { stream, subject: m.subject, sequence: m.seq, headers: m.headers, body: m.data };
        }
      } catch (cause) {
        if (!stopped) throw fail(cause);
      } finally {
        messages.stop();
        void consumer.delete().catch(() => undefined);
      }
    }
    const iterable = commits();
    return {
      [Symbol.asyncIterator]: () => iterable,
      stop() {
        stopped = true;
        stopMessages?.();
      },
    };
  }
}
