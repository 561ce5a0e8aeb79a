import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { OrderingTopology } from '@orderflow/contracts';
import { connectNats } from '@orderflow/messaging';
import type { NatsTarget } from './bus.ts';
import { CliError, reasonOf } from './errors.ts';

/**
 * Connects a CLI command to Orderflow's NATS (with the target's credentials on a secured bus): fails at once with a one-line {@link CliError} when
 * nothing answers at `url` (`NATS_UNREACHABLE`) or the server there has no `ORDERING` stream
 * (`NOT_ORDERFLOW`: another system's NATS, or one Orderflow never ran on). With `reconnect`, the
 * connection returned reconnects forever once it stood (for `tail`).
 */
export async function connectOrderflow(
  target: NatsTarget,
  name: string,
  options: { reconnect?: boolean } = {},
): Promise<NatsConnection> {
  const url = target.servers;
  const probe = await connectOnce(target, name);
  try {
    const jsm = await jetstreamManager(probe);
    await jsm.streams.info(OrderingTopology.stream).catch((error: unknown) => {
      if (/stream not found/i.test(error instanceof Error ? error.message : String(error))) {
        throw new CliError(
          'NOT_ORDERFLOW',
          `NATS at ${url} has no ${OrderingTopology.stream} stream: not Orderflow's NATS, or Orderflow never ran on it ` +
            '(start it with `orderflow up`, or point at it with --nats <url> / NATS_URL)',
        );
      }
      throw error;
    });
  } catch (error) {
    await probe.close();
    throw error;
  }
  if (!options.reconnect) return probe;
  await probe.close();
  return (await connectNats({ ...target, name })).nc;
}

async function connectOnce(target: NatsTarget, name: string): Promise<NatsConnection> {
  const url = target.servers;
  try {
    return (await connectNats({ ...target, name, maxReconnectAttempts: 0, waitOnFirstConnect: false })).nc;
  } catch (error) {
    throw new CliError(
      'NATS_UNREACHABLE',
      `cannot reach NATS at ${url} (${reasonOf(error)}); is \`orderflow up\` running? (--nats <url>, NATS_URL, --data-dir)`,
      { cause: error },
    );
  }
}
