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
export const BUS_ACCOUNT = 'ORDERFLOW';

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
  options: { chaos?: boolean; tls?: boolean } = {},
): Promise<BusSecrets> {
  const names = orderingBusIdentities(topology, { chaos: options.chaos ?? false }).map((i) => i.name);
  return ensureBusSecrets(secretsDir, names, { tls: options.tls ?? true });
}

/** Credentials of `identity` from a secrets directory laid out by {@link prepareBusSecrets}. */
export function busCredentials(
  secrets: Pick<BusSecrets, 'dir' | 'tls'>,
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
