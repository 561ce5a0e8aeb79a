import {
  orderingBusIdentities,
  serviceConsumers,
  type BusIdentityName,
  type OrderingTopology,
} from '@orderflow/contracts';
import {
  connectRabbit,
  ensureRabbitPasswords,
  provisionRabbit,
  rabbitBusPermissions,
  rabbitPasswordFile,
  rabbitUrl,
  readRabbitPassword,
  type RabbitConsumerDeclaration,
  type RabbitIdentityAccess,
} from '@orderflow/messaging';
import type amqp from 'amqplib';
import type { UpState } from './state.ts';

/**
 * A connection to a running system's RabbitMQ as its operator (the login `up` recorded), for the CLI's
 * reads and repairs; it fails at once when the broker cannot be reached, and its errors are the
 * caller's to report, not the process's.
 */
export async function connectAsOperator(
  rabbit: NonNullable<UpState['rabbit']>,
  name: string,
): Promise<amqp.ChannelModel> {
  const password = await readRabbitPassword(rabbit.operatorPasswordFile);
  const connection = await connectRabbit({
    url: rabbitUrl(rabbit.url, rabbit.operatorUser, password, rabbit.vhost),
    name,
    waitOnFirstConnect: false,
  });
  connection.on('error', () => undefined);
  return connection;
}

/**
 * The ordering context on RabbitMQ: one user per identity of `orderingBusIdentities` (the same
 * declarations the NATS permissions come from), the streams and every declared durable consumer's
 * queues, declared by the provisioning identity. Used by `orderflow rabbit provision` and the tests.
 */

/** Every durable consumer of the topology, as its queues are declared (per-key order: `orderingKey`). */
export function orderingRabbitConsumers(
  topology: OrderingTopology,
  options: { maxDeliver?: number } = {},
): RabbitConsumerDeclaration[] {
  return Object.values(serviceConsumers(topology))
    .flat()
    .map((binding) => ({
      stream: binding.stream,
      name: binding.name,
      filterSubject: binding.filterSubject,
      ordered: binding.orderingKey !== undefined,
      ...(options.maxDeliver !== undefined && { maxDeliver: options.maxDeliver }),
    }));
}

export interface ProvisionOrderingRabbitOptions {
  /** The broker without credentials, `amqp://127.0.0.1:5672`. */
  readonly url: string;
  readonly vhost: string;
  readonly secretsDir: string;
  readonly userPrefix?: string;
  /** Only these identities (default all of `orderingBusIdentities`; the provisioner is always included). */
  readonly only?: readonly BusIdentityName[];
  readonly chaos?: boolean;
  readonly rabbitmqctl?: string;
}

/** Users, permissions and topology of the ordering context on RabbitMQ; how each identity connects. */
export function provisionOrderingRabbit(
  topology: OrderingTopology,
  options: ProvisionOrderingRabbitOptions,
): Promise<Map<string, RabbitIdentityAccess>> {
  const all = orderingBusIdentities(topology, { chaos: options.chaos ?? false });
  const only = options.only;
  const identities = only
    ? all.filter((i) => i.jetStreamAdmin === true || only.includes(i.name as BusIdentityName))
    : all;
  return provisionRabbit({
    url: options.url,
    vhost: options.vhost,
    identities,
    // Dead letters are a queue on RabbitMQ (declared with the base), not a stream.
    streams: topology.streams,
    consumers: orderingRabbitConsumers(topology),
    secretsDir: options.secretsDir,
    ...(options.userPrefix !== undefined && { userPrefix: options.userPrefix }),
    ...(options.rabbitmqctl !== undefined && { rabbitmqctl: options.rabbitmqctl }),
  });
}

/**
 * How each identity of the ordering context will connect once {@link provisionOrderingRabbit} ran with
 * the same options: the same users, password files and URLs it returns, without asking the broker
 * (the passwords are made here if missing, and reused by the provisioning). So a system can hand each
 * process its URL before the users exist.
 */
export async function orderingRabbitAccess(
  topology: OrderingTopology,
  options: Pick<ProvisionOrderingRabbitOptions, 'url' | 'vhost' | 'secretsDir' | 'userPrefix' | 'chaos'>,
): Promise<Map<string, RabbitIdentityAccess>> {
  const names = orderingBusIdentities(topology, { chaos: options.chaos ?? false }).map((i) => i.name);
  const passwords = await ensureRabbitPasswords(options.secretsDir, names);
  const prefix = options.userPrefix ?? '';
  return new Map(
    names.map((name) => [
      name,
      {
        user: `${prefix}${name}`,
        passwordFile: rabbitPasswordFile(options.secretsDir, name),
        url: rabbitUrl(options.url, `${prefix}${name}`, passwords.get(name) ?? '', options.vhost),
      },
    ]),
  );
}

/** `orderflow rabbit permissions`: every identity's permissions, one block each. */
export function rabbitPermissionsText(topology: OrderingTopology): string {
  const lines: string[] = [];
  for (const [name, p] of rabbitBusPermissions(orderingBusIdentities(topology))) {
    lines.push(`${name}`, `  configure ${p.configure}`, `  write     ${p.write}`, `  read      ${p.read}`);
    for (const t of p.topics)
      if (t.write !== '^$' || t.read !== '^$')
        lines.push(`  topic ${t.exchange}: write ${t.write} read ${t.read}`);
    lines.push('');
  }
  return lines.join('\n');
}
