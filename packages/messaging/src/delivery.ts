import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { MessageContract } from './contract.ts';
import type { Envelope } from './envelope.ts';
import type { Delivery, RetryPolicy } from './types.ts';

/** Header set on a redriven message: the subject the message was first published on. */
export const ORIGINAL_SUBJECT_HEADER = 'Orderflow-Original-Subject';
/** Header set on a redriven message: its stream sequence in the original stream. */
export const ORIGINAL_SEQUENCE_HEADER = 'Orderflow-Original-Sequence';

/** A {@link Delivery} backed by a JetStream message. */
export class JetStreamDelivery implements Delivery {
  envelope: Envelope | undefined;
  contract: MessageContract | undefined;
  settled: 'ack' | 'nak' | 'term' | undefined;
  readonly locals = new Map<string, unknown>();
  readonly subject: string;
  readonly streamSequence: number;
  readonly redriven: boolean;

  constructor(
    readonly msg: JsMsg,
    readonly stream: string,
    readonly consumer: string,
    private readonly baseLogger: Logger,
    readonly maxDeliver: number,
    readonly retry: RetryPolicy,
    redriven: boolean,
  ) {
    this.redriven = redriven;
    const original = redriven ? msg.headers?.get(ORIGINAL_SUBJECT_HEADER) : undefined;
    this.subject = original || msg.subject;
    const originalSeq = redriven ? Number(msg.headers?.get(ORIGINAL_SEQUENCE_HEADER)) : NaN;
    this.streamSequence = Number.isFinite(originalSeq) && originalSeq > 0 ? originalSeq : msg.seq;
  }

  #logger: Logger | undefined;
  /** Created on first use: most deliveries never log. */
  get logger(): Logger {
    return (this.#logger ??= this.baseLogger.child({
      subject: this.subject,
      seq: this.streamSequence,
      deliveryCount: this.deliveryCount,
      ...(this.envelope && {
        type: this.envelope.type,
        eventId: this.envelope.id,
        correlationId: this.envelope.correlationId,
      }),
    }));
  }

  get deliveryCount(): number {
    return this.msg.info.deliveryCount;
  }

  get body(): Uint8Array {
    return this.msg.data;
  }

  header(name: string): string | undefined {
    const value = this.msg.headers?.get(name);
    return value ? value : undefined;
  }

  headerEntries(): [string, string][] {
    const entries: [string, string][] = [];
    const headers = this.msg.headers;
    if (!headers) return entries;
    for (const name of headers.keys()) for (const value of headers.values(name)) entries.push([name, value]);
    return entries;
  }

  working(): void {
    if (!this.settled) this.msg.working();
  }

  ack(): void {
    if (this.settled) return;
    this.settled = 'ack';
    this.msg.ack();
  }

  /** Delay of the last nak, so an ordered lane knows when the redelivery is due. */
  nakDelayMs = 0;

  nak(delayMs: number): void {
    if (this.settled) return;
    this.settled = 'nak';
    this.nakDelayMs = delayMs;
    this.msg.nak(Math.max(1, Math.round(delayMs)));
  }

  term(): void {
    if (this.settled) return;
    this.settled = 'term';
    this.msg.term();
  }
}
