import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { MessagingError, ProvisioningError } from '../errors.ts';
import type { BusIdentity } from '../security/permissions.ts';
import type { StreamDeclaration } from '../topology.ts';
import { rabbitBusPermissions, type RabbitUserPermissions } from './permissions.ts';
import {
  declareRabbitBase,
  declareRabbitConsumer,
  declareRabbitStream,
  type RabbitConsumerDeclaration,
} from './topology.ts';

const run = promisify(execFile);

/**
 * The admin step of RabbitMQ: one user per identity with its permissions, then the topology declared
 * as the provisioning identity. Services then connect with `RabbitTransport.create(…, { provisioned:
 * true })` and need no configure rights but on their own private and endpoint queues.
 *
 * Users and permissions go in with `rabbitmqctl import_definitions` (one call: each `rabbitmqctl`
 * start costs seconds), which needs the broker's node and its Erlang cookie (root or the rabbitmq
 * user on the broker's machine). The management HTTP API (`POST /api/definitions`) takes the same
 * document; production would use it from a deploy job, or the broker's definitions file at boot.
 */

/** Where an identity's RabbitMQ password is: `<secretsDir>/<identity>.amqp-password`, mode 0600. */
export function rabbitPasswordFile(secretsDir: string, identity: string): string {
  return join(secretsDir, `${identity}.amqp-password`);
}

/** Reads a password file (trailing whitespace ignored). */
export async function readRabbitPassword(path: string): Promise<string> {
  const text = (await readFile(path, 'utf8')).trim();
  if (!/^[A-Za-z0-9_-]{20,}$/.test(text))
    throw new MessagingError('INVALID_CONFIG', `${path} does not hold an orderflow RabbitMQ password`);
  return text;
}

/** `url` (`amqp://host:port[/vhost]`) with `user` and `password`, and `vhost` when given. */
export function rabbitUrl(url: string, user: string, password: string, vhost?: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  if (vhost !== undefined) u.pathname = `/${encodeURIComponent(vhost)}`;
  return u.toString();
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The password of each identity in `dir` (mode 0700, files 0600): generated once (32 random bytes,
 * base64url), then reused, like the NATS nkey seeds (`ensureBusSecrets`).
 */
export async function ensureRabbitPasswords(
  dir: string,
  identities: readonly string[],
): Promise<Map<string, string>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const passwords = new Map<string, string>();
  for (const name of identities) {
    if (!/^[A-Za-z0-9_-]+$/.test(name))
      throw new MessagingError('INVALID_CONFIG', `bad identity name "${name}"`);
    const file = rabbitPasswordFile(dir, name);
    if (!(await exists(file)))
      await writeFile(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600);
    passwords.set(name, await readRabbitPassword(file));
  }
  return passwords;
}

/** RabbitMQ's default password hash (`rabbit_password_hashing_sha256`): base64(salt ‖ sha256(salt ‖ password)). */
export function rabbitPasswordHash(password: string, salt: Buffer = randomBytes(4)): string {
  const digest = createHash('sha256')
    .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
    .digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

export interface RabbitUserDefinition {
  readonly user: string;
  readonly password: string;
  readonly permissions: RabbitUserPermissions;
}

/** The definitions document (`rabbitmqctl import_definitions`, `POST /api/definitions`) for `users` in `vhost`. */
export function rabbitDefinitions(vhost: string, users: readonly RabbitUserDefinition[]): object {
  return {
    vhosts: [{ name: vhost }],
    users: users.map((u) => ({
      name: u.user,
      password_hash: rabbitPasswordHash(u.password),
      hashing_algorithm: 'rabbit_password_hashing_sha256',
      tags: [],
    })),
    permissions: users.map((u) => ({
      user: u.user,
      vhost,
      configure: u.permissions.configure,
      write: u.permissions.write,
      read: u.permissions.read,
    })),
    topic_permissions: users.flatMap((u) =>
      u.permissions.topics.map((t) => ({
        user: u.user,
        vhost,
        exchange: t.exchange,
        write: t.write,
        read: t.read,
      })),
    ),
  };
}

export interface ProvisionRabbitOptions {
  /** The broker, without credentials: `amqp://127.0.0.1:5672`. */
  readonly url: string;
  readonly vhost: string;
  /** Who does what (`orderingBusIdentities`); the one with `jetStreamAdmin` declares the topology. */
  readonly identities: readonly BusIdentity[];
  readonly streams: readonly StreamDeclaration[];
  readonly consumers: readonly RabbitConsumerDeclaration[];
  /** Where the passwords are kept (`<identity>.amqp-password`). */
  readonly secretsDir: string;
  /** Prefix of every user name (RabbitMQ users are per broker, not per vhost). Default none. */
  readonly userPrefix?: string;
  /** Default `rabbitmqctl` from PATH. */
  readonly rabbitmqctl?: string;
}

export interface RabbitIdentityAccess {
  readonly user: string;
  readonly passwordFile: string;
  /** `amqp://<user>:<password>@host:port/<vhost>`. */
  readonly url: string;
}

/**
 * Runs `rabbitmqctl import_definitions --format json` with the document on stdin (no path: 3.10 refuses `-`) (rabbitmqctl runs as the broker's
 * user, who cannot read the secrets directory; nor are the hashes written anywhere).
 */
function importDefinitions(rabbitmqctl: string, definitions: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(rabbitmqctl, ['import_definitions', '--format', 'json'], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const fail = (cause: unknown) =>
      reject(
        new ProvisioningError(
          'rabbitmq',
          `${rabbitmqctl} import_definitions failed: ${stderr || String(cause)}`,
          {
            cause,
          },
        ),
      );
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? resolve() : fail(new Error(`exit code ${code}`))));
    child.stdin.end(JSON.stringify(definitions));
  });
}

/** The import is asynchronous on the broker: wait until the provisioning user can open the vhost. */
async function connectWhenReady(url: string, timeoutMs = 30_000): Promise<amqp.ChannelModel> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await amqp.connect(url);
    } catch (error) {
      if (Date.now() > deadline)
        throw new ProvisioningError(
          'rabbitmq',
          `the provisioner cannot connect: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/**
 * Creates (or updates) one user per identity with its permissions and topic permissions, then, as
 * the provisioning identity, declares the shared exchanges, the dead-letter queue, the streams and
 * every consumer's queues with their bindings. Idempotent: passwords are reused, permissions are
 * overwritten (each user has one entry per exchange, so none is left stale), declarations that exist
 * are kept. Returns how each identity connects.
 */
export async function provisionRabbit(
  options: ProvisionRabbitOptions,
): Promise<Map<string, RabbitIdentityAccess>> {
  const prefix = options.userPrefix ?? '';
  const admin = options.identities.find((i) => i.jetStreamAdmin);
  if (!admin)
    throw new MessagingError(
      'INVALID_CONFIG',
      'no provisioning identity (jetStreamAdmin) among the identities',
    );
  const permissions = rabbitBusPermissions(options.identities);
  const passwords = await ensureRabbitPasswords(options.secretsDir, [...permissions.keys()]);
  const users: RabbitUserDefinition[] = [...permissions].map(([name, p]) => ({
    user: `${prefix}${name}`,
    password: passwords.get(name) ?? '',
    permissions: p,
  }));
  await importDefinitions(options.rabbitmqctl ?? 'rabbitmqctl', rabbitDefinitions(options.vhost, users));

  const access = new Map<string, RabbitIdentityAccess>();
  for (const name of permissions.keys()) {
    access.set(name, {
      user: `${prefix}${name}`,
      passwordFile: rabbitPasswordFile(options.secretsDir, name),
      url: rabbitUrl(options.url, `${prefix}${name}`, passwords.get(name) ?? '', options.vhost),
    });
  }
  const connection = await connectWhenReady(access.get(admin.name)?.url ?? '');
  try {
    const ch = await connection.createChannel();
    await declareRabbitBase(ch);
    for (const stream of options.streams) await declareRabbitStream(ch, stream);
    for (const consumer of options.consumers) await declareRabbitConsumer(ch, consumer);
    await ch.close();
  } finally {
    await connection.close().catch(() => undefined);
  }
  return access;
}

/** Deletes the users `provisionRabbit` created for `identities` (tests; decommissioning a system). */
export async function removeRabbitUsers(
  identities: readonly string[],
  options: { userPrefix?: string; rabbitmqctl?: string } = {},
): Promise<void> {
  for (const name of identities)
    await run(options.rabbitmqctl ?? 'rabbitmqctl', [
      'delete_user',
      `${options.userPrefix ?? ''}${name}`,
    ]).catch(() => undefined);
}
