import { join } from 'node:path';
import {
  CHAOS_IDENTITY,
  orderingBusIdentities,
  type BusIdentityName,
  type OrderingTopology,
} from '@orderflow/contracts';
import {
  busPermissions,
  ensureBusSecrets,
  inboxPrefix,
  natsServerConfig,
  type BusSecrets,
  type ServerCluster,
} from '@orderflow/messaging';

/**
 * The secured bus of the ordering context: nkey seeds and TLS files under a secrets directory, and
 * the nats-server configuration that gives each identity the permissions derived from the topology
 * (`orderingBusIdentities`). Used by `up` (its private nats-server), `orderflow provision`, the chaos
 * harness (also for its 3-node cluster) and the tests.
 */

/** Name of the one account every identity lives in. */
const BUS_ACCOUNT = 'ORDERFLOW';

/** Where and as whom a CLI command connects: the URL(s), and credentials on a secured bus. */
export interface NatsTarget {
  readonly servers: string;
  readonly nkeySeedFile?: string;
  readonly caFile?: string;
  readonly inboxPrefix?: string;
}

/** How a program connects as `identity` (the settings every Orderflow process reads). */
export interface BusCredentials {
  /** The inbox prefix its permissions allow. */
  readonly inboxPrefix: string;
  readonly nkeySeedFile: string;
  readonly caFile?: string;
}

/** Generates (once; missing parts again) every identity's nkey and the CA and server certificate. */
export async function prepareBusSecrets(
  secretsDir: string,
  topology: OrderingTopology,
  options: { chaos?: boolean; tls?: boolean; tlsHosts?: readonly string[] } = {},
): Promise<BusSecrets> {
  const names = orderingBusIdentities(topology, { chaos: options.chaos ?? false }).map((i) => i.name);
  return ensureBusSecrets(secretsDir, names, {
    tls: options.tls ?? true,
    ...(options.tlsHosts && { hosts: options.tlsHosts }),
  });
}

/** Credentials of `identity` from a secrets directory laid out by {@link prepareBusSecrets}. */
export function busCredentials(
  secrets: { readonly dir: string; readonly tls?: { readonly caFile: string } | undefined },
  identity: BusIdentityName,
): BusCredentials {
  return {
    inboxPrefix: inboxPrefix(identity),
    nkeySeedFile: join(secrets.dir, `${identity}.nk`),
    ...(secrets.tls && { caFile: secrets.tls.caFile }),
  };
}

/** The environment a child process reads its credentials from (see `busSettings` in each main.ts). */
export function credentialsEnv(credentials: BusCredentials): Record<string, string> {
  return {
    NATS_NKEY_SEED_FILE: credentials.nkeySeedFile,
    NATS_INBOX_PREFIX: credentials.inboxPrefix,
    ...(credentials.caFile !== undefined && { NATS_CA_FILE: credentials.caFile }),
  };
}

export interface BusServerOptions {
  readonly serverName: string;
  readonly host?: string;
  readonly port: number;
  readonly storeDir: string;
  readonly monitorPort?: number;
  readonly cluster?: ServerCluster;
  /** Also a user for the chaos harness (see `CHAOS_IDENTITY`). */
  readonly chaos?: boolean;
}

/** The nats-server configuration of the ordering context's bus (one node, or one node of a cluster). */
export function busServerConfig(
  secrets: BusSecrets,
  topology: OrderingTopology,
  options: BusServerOptions,
): string {
  const identities = orderingBusIdentities(topology, { chaos: options.chaos ?? false });
  const permissions = busPermissions(identities);
  return natsServerConfig({
    serverName: options.serverName,
    host: options.host ?? '127.0.0.1',
    port: options.port,
    storeDir: options.storeDir,
    account: BUS_ACCOUNT,
    users: identities.map((identity) => {
      const key = secrets.keys.get(identity.name);
      if (!key) throw new Error(`no nkey for ${identity.name} in ${secrets.dir}`);
      return { name: identity.name, nkey: key.publicKey, permissions: permissions.get(identity.name)! };
    }),
    ...(secrets.tls && { tls: { certFile: secrets.tls.certFile, keyFile: secrets.tls.keyFile } }),
    ...(options.cluster && { cluster: options.cluster }),
    ...(options.monitorPort !== undefined && { monitorPort: options.monitorPort }),
  });
}

export { CHAOS_IDENTITY };

/** Lines of a nats-server log that report a refused publish or subscribe. */
export const PERMISSION_VIOLATION = /Permissions Violation|Publish Violation|Subscription Violation/;

const code = (values: readonly string[]): string =>
  values.length === 0 ? '—' : values.map((v) => `\`${v.replace(/\|/g, '\\|')}\``).join(', ');

/**
 * Who may do what on the bus, as a Markdown table generated from `orderingBusIdentities` (the same
 * declarations the server config's permissions come from). docs/security.md holds a copy that a test
 * keeps equal to this.
 */
export function permissionsTable(topology: OrderingTopology): string {
  const rows = orderingBusIdentities(topology, { chaos: true }).map((i) => {
    const publishes = [...(i.publishes ?? []), ...(i.broadcasts ?? []), ...(i.deadLetters ?? [])];
    const requests = [...(i.requests ?? []), ...(i.provisioningRequests ?? [])];
    const answers = [...(i.serves ?? []), ...(i.provisioningServes ?? [])].map(
      (s) => `${s.subject} (queue ${s.queue})`,
    );
    const reads = [
      ...(i.consumers ?? []).map((c) => `${c.stream}/${c.durable}`),
      ...(i.orderedReads ?? []).map((r) => `${r.stream} ordered on ${r.filter}`),
      ...(i.messageGets ?? []).map((s) => `${s} get`),
      ...(i.listens ?? []),
    ];
    const buckets = [
      ...(i.kv ?? []).map((b) => `KV ${b.bucket} ${b.write ? 'read/write' : 'read'}`),
      ...(i.objectStores ?? []).map((b) => `objects ${b.bucket} ${b.write ? 'read/write' : 'read'}`),
      ...(i.messageDeletes ?? []).map((s) => `${s} delete one message`),
      ...(i.inspects ? ['list/info of every stream and consumer'] : []),
      ...(i.jetStreamAdmin ? ['the whole JetStream API'] : []),
    ];
    return `| \`${i.name}\` | ${i.description} | ${code(publishes)} | ${code(requests)} | ${code(answers)} | ${code(reads)} | ${code(buckets)} |`;
  });
  return [
    '| identity | role | publishes | requests | answers | reads (stream/durable, ordered reads, notifications) | buckets and JetStream API |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}
