import amqp, { type ChannelModel } from 'amqplib';
import type { Logger } from 'pino';
import { MessagingError } from '../errors.ts';

export interface RabbitConnectionConfig {
  /** `amqp://user:password@host:port/vhost` or `amqps://…`. */
  url: string;
  /** Connection name shown by the broker (`connection_name` client property). */
  name: string;
  /** Heartbeat asked for when the URL has no `heartbeat` parameter (default 15 s). */
  heartbeatS?: number;
  /**
   * Keep trying until the first connect succeeds (default true: a service started before the broker
   * waits for it). False: reject at the first failure.
   */
  waitOnFirstConnect?: boolean;
  /** Wait between connect attempts, doubled up to 5 s (default 500 ms). */
  retryDelayMs?: number;
  logger?: Logger;
}

/** The URL without its password, for logs and errors. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(not a URL)';
  }
}

/**
 * A refusal that retrying cannot fix: wrong credentials (403 ACCESS_REFUSED) or a vhost the user may
 * not open or that does not exist (530 NOT_ALLOWED).
 */
function refused(error: unknown): boolean {
  return error instanceof Error && /Handshake terminated by server: (403|530)\b/.test(error.message);
}

/**
 * Opens an AMQP connection with amqplib. Until the first connect succeeds it retries with backoff
 * (unless `waitOnFirstConnect` is false), except when the broker refused the credentials or the vhost:
 * then it fails at once with `BROKER_REFUSED`. Other failures end in `BROKER_UNAVAILABLE`. There is no
 * reconnect afterwards: amqplib does not reconnect, and the channels and consumers of a lost connection
 * are gone; the owner watches the connection's `close` event (the runner reports it and exits).
 */
export async function connectRabbit(config: RabbitConnectionConfig): Promise<ChannelModel> {
  const url = new URL(config.url);
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    throw new MessagingError('INVALID_CONFIG', `not an AMQP URL: ${redactedUrl(config.url)}`);
  }
  if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', String(config.heartbeatS ?? 15));
  let delayMs = config.retryDelayMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await amqp.connect(url.toString(), { clientProperties: { connection_name: config.name } });
    } catch (error) {
      if (refused(error)) {
        throw new MessagingError(
          'BROKER_REFUSED',
          `RabbitMQ at ${redactedUrl(config.url)} refused ${config.name}`,
          {
            cause: error,
          },
        );
      }
      if (config.waitOnFirstConnect === false) {
        throw new MessagingError(
          'BROKER_UNAVAILABLE',
          `RabbitMQ at ${redactedUrl(config.url)} did not answer`,
          {
            cause: error,
          },
        );
      }
      config.logger?.warn(
        { err: error, url: redactedUrl(config.url), attempt },
        'RabbitMQ not reachable yet',
      );
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, 5_000);
    }
  }
}
