import type { BrokerKind } from '@orderflow/messaging';

/**
 * Errors of the `orderflow` command that mean "this cannot work as asked" rather than a bug: the
 * command prints the message as one line (no stack) and exits 1. Each has a stable `code`.
 */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly code:
      'NATS_UNREACHABLE' | 'NOT_ORDERFLOW' | 'GATEWAY_UNREACHABLE' | 'ALREADY_RUNNING' | 'WRONG_BROKER',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const BROKER_LABELS: Record<BrokerKind, string> = { nats: 'NATS', rabbitmq: 'RabbitMQ' };

/**
 * Something that exists on one broker only, asked of a system on the other: `orderflow tail` (core
 * NATS subjects) of a system on RabbitMQ, a system's AMQP URL on NATS.
 */
export class WrongBrokerError extends CliError {
  override name = 'WrongBrokerError';
  constructor(
    /** What was asked, e.g. `orderflow tail`. */
    readonly what: string,
    readonly needs: BrokerKind,
    readonly broker: BrokerKind,
    /** Where the system was found, or what to do instead. */
    hint?: string,
  ) {
    super(
      'WRONG_BROKER',
      `${what} needs ${BROKER_LABELS[needs]}; this system runs on ${BROKER_LABELS[broker]}` +
        (hint === undefined ? '' : ` (${hint})`),
    );
  }
}

/** The reason of a failed connection in a few words (`ECONNREFUSED`…), from the error or its causes. */
export function reasonOf(error: unknown): string {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return error instanceof Error ? error.message : String(error);
}
