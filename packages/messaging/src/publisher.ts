import type { JetStreamClient } from '@nats-io/jetstream';
import { JetStreamApiError } from '@nats-io/jetstream';
import type { MessageContract, PayloadOf } from './contract.ts';
import { createEnvelope, encodeData, envelopeHeaders } from './envelope.ts';
import { ConcurrencyError, PublishError } from './errors.ts';
import type { BatchItem, EventPublisher, PublishOptions, PublishReceipt } from './types.ts';

export interface JetStreamPublisherOptions {
  /** `ce-source` of every event (e.g. `orderflow/order-storage`). */
  source: string;
  /** Attempts per publish when the ack does not come (default 4); safe thanks to `Nats-Msg-Id`. */
  attempts?: number;
  /** Per-attempt ack timeout (default 5000 ms). */
  timeoutMs?: number;
  /** Called after a payload was stored (metrics, tests). */
  onPublished?: (contract: MessageContract, receipt: PublishReceipt) => void;
}

const WRONG_LAST_SEQUENCE = 10071;

function isRetryable(error: unknown): boolean {
  // A JetStream API error is the server's final word (wrong sequence, no such stream); anything else
  // (timeout, no responders while the stream leader moves, connection lost) may succeed on retry.
  return !(error instanceof JetStreamApiError);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** {@link EventPublisher} on JetStream. */
export class JetStreamPublisher implements EventPublisher {
  readonly #attempts: number;
  readonly #timeoutMs: number;

  constructor(
    private readonly js: JetStreamClient,
    private readonly options: JetStreamPublisherOptions,
  ) {
    this.#attempts = options.attempts ?? 4;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
  }

  async publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: PublishOptions,
  ): Promise<PublishReceipt> {
    contract.parse(data);
    return this.#send(contract, data, options);
  }

  async #send(contract: MessageContract, data: unknown, options: PublishOptions): Promise<PublishReceipt> {
    const envelope = createEnvelope({
      type: contract.type,
      source: this.options.source,
      data,
      ...(options.id !== undefined && { id: options.id }),
      ...(options.about !== undefined && { subject: options.about }),
      ...(options.causedBy !== undefined && { causedBy: options.causedBy }),
    });
    const headers = envelopeHeaders(envelope);
    const payload = encodeData(data);
    const timeout = options.timeoutMs ?? this.#timeoutMs;
    const expect =
      options.expectedLastSubjectSequence === undefined
        ? undefined
        : { lastSubjectSequence: options.expectedLastSubjectSequence };
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await this.js.publish(options.subject, payload, {
          msgID: envelope.id,
          headers,
          timeout,
          ...(expect && { expect }),
        });
        const receipt = { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate, id: envelope.id };
        this.options.onPublished?.(contract, receipt);
        return receipt;
      } catch (error) {
        if (error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE && expect) {
          throw new ConcurrencyError(options.subject, expect.lastSubjectSequence, { cause: error });
        }
        if (!isRetryable(error) || attempt >= this.#attempts) {
          throw new PublishError(options.subject, (error as Error).message, { cause: error });
        }
        await pause(Math.min(100 * 2 ** attempt, 2_000));
      }
    }
  }

  async publishBatch(
    items: readonly BatchItem[],
    options: { maxInFlight?: number; timeoutMs?: number } = {},
  ): Promise<PublishReceipt[]> {
    // Validate everything first: a batch with one bad payload sends nothing.
    for (const item of items) item.contract.parse(item.data);
    const maxInFlight = Math.max(1, options.maxInFlight ?? 256);
    const receipts = new Array<PublishReceipt>(items.length);
    let next = 0;
    let failure: Error | undefined;
    const lane = async (): Promise<void> => {
      while (next < items.length) {
        const index = next++;
        const item = items[index] as BatchItem;
        try {
          receipts[index] = await this.#send(item.contract, item.data, {
            ...item.options,
            ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
          });
        } catch (error) {
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(maxInFlight, items.length) }, lane));
    if (failure !== undefined) throw failure;
    return receipts;
  }
}
