import type { Channel, ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { AccessRefusedError, PublishError, TimeoutError } from '../errors.ts';

/** Why the broker closed a channel (the `error` event comes before `close` and the confirm callbacks). */
const closeErrors = new WeakMap<Channel, Error>();

/** Records a channel's close error and keeps it from being an unhandled `error` event (a crash). */
export function watchChannel(ch: Channel, onError: (error: Error) => void): void {
  ch.on('error', (error: Error) => {
    closeErrors.set(ch, error);
    onError(error);
  });
}

/**
 * The refusal of a publish to `exchange` with `routingKey`, when `ch` was closed by a 403 that names
 * them: the routing key outside the user's topic permissions, or the exchange outside its write
 * permission. Other messages in flight on the channel when it closed are not refused, only cut off.
 */
export function refusalOf(ch: Channel, exchange: string, routingKey: string): AccessRefusedError | undefined {
  const error = closeErrors.get(ch);
  if (!error || (error as { code?: unknown }).code !== 403) return undefined;
  const topic = `access to topic '${routingKey}' in exchange '${exchange}'`;
  const whole = `access to exchange '${exchange === '' ? 'amq.default' : exchange}'`;
  if (!error.message.includes(topic) && !error.message.includes(whole)) return undefined;
  return new AccessRefusedError(
    `${exchange}/${routingKey}`,
    error.message.replace(/^.*ACCESS_REFUSED - /, ''),
    {
      cause: error,
    },
  );
}

/**
 * A channel opened again on first use after the broker closed it: a refused publish (403) closes
 * the channel it was sent on, and must not leave the process without one. While the connection is
 * gone, `get()` rejects with amqplib's `Connection closed` (a broker-unavailable error).
 */
export class ChannelSlot<C extends Channel> {
  #current: Promise<C> | undefined;

  constructor(
    private readonly open: () => Promise<C>,
    private readonly onError: (error: Error) => void,
    private readonly onOpen?: (ch: C) => void,
  ) {}

  get(): Promise<C> {
    if (this.#current) return this.#current;
    const opening = this.open().then((ch) => {
      watchChannel(ch, this.onError);
      ch.on('close', () => {
        if (this.#current === opening) this.#current = undefined;
      });
      this.onOpen?.(ch);
      return ch;
    });
    this.#current = opening;
    opening.catch(() => {
      if (this.#current === opening) this.#current = undefined;
    });
    return opening;
  }

  static confirm(connection: ChannelModel, onError: (error: Error) => void): ChannelSlot<ConfirmChannel> {
    return new ChannelSlot(() => connection.createConfirmChannel(), onError);
  }
}

/**
 * Publishes with a broker confirm. Rejects with a {@link PublishError}: its cause is an
 * {@link AccessRefusedError} when the broker refused this message (not retryable), a `TimeoutError`
 * without a confirm in `timeoutMs`, amqplib's `channel closed` when the channel went away with the
 * message in flight (retryable, see `isBrokerUnavailable`).
 */
export async function publishConfirmed(
  slot: ChannelSlot<ConfirmChannel>,
  exchange: string,
  routingKey: string,
  body: Buffer,
  properties: Options.Publish,
  timeoutMs: number,
  subject = routingKey,
): Promise<void> {
  let ch: ConfirmChannel;
  try {
    ch = await slot.get();
  } catch (cause) {
    throw new PublishError(subject, 'no channel to the broker', { cause });
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new PublishError(subject, `no confirm within ${timeoutMs} ms`, {
            cause: new TimeoutError(subject, timeoutMs),
          }),
        ),
      timeoutMs,
    );
    try {
      // amqplib buffers when the socket is busy; the confirm callback settles the promise.
      ch.publish(exchange, routingKey, body, properties, (error: Error | null) => {
        clearTimeout(timer);
        if (!error) return resolve();
        const refused = refusalOf(ch, exchange, routingKey);
        if (refused)
          reject(new PublishError(subject, 'the broker refused it (403 ACCESS_REFUSED)', { cause: refused }));
        else if (error.message === 'message nacked')
          reject(new PublishError(subject, 'the broker refused the message (nack)', { cause: error }));
        else reject(new PublishError(subject, 'the channel closed before the confirm', { cause: error }));
      });
    } catch (cause) {
      clearTimeout(timer);
      reject(new PublishError(subject, 'the channel is closed', { cause }));
    }
  });
}
