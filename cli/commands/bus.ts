import { join, resolve } from 'node:path';
import { orderingTopology } from '@orderflow/contracts';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { busServerConfig, permissionsTable, prepareBusSecrets } from '../bus.ts';

export interface BusCommandOptions {
  readonly secretsDir: string;
  readonly serverName: string;
  readonly host: string;
  readonly port: number;
  readonly storeDir: string;
  /** Names and addresses the generated server certificate is for (default localhost, 127.0.0.1). */
  readonly tlsHosts?: readonly string[];
  readonly cluster?: { readonly name: string; readonly port: number; readonly routes: readonly string[] };
}

/** The route password of a cluster, generated once into the secrets directory (mode 0600). */
async function routePassword(dir: string): Promise<string> {
  const file = join(dir, 'cluster-route.secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const secret = randomBytes(24).toString('base64url');
    await writeFile(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return secret;
  }
}

/**
 * `orderflow bus permissions`: the table of who may do what (docs/security.md). `orderflow bus config`:
 * the identities' nkeys and a CA with a server certificate in the secrets directory (generated once),
 * and on stdout the nats-server config for one node (with `--cluster-name`, a node of a cluster).
 */
export async function bus(action: 'permissions' | 'config', options: BusCommandOptions): Promise<number> {
  const topology = orderingTopology();
  if (action === 'permissions') {
    process.stdout.write(`${permissionsTable(topology)}\n`);
    return 0;
  }
  const dir = resolve(options.secretsDir);
  const secrets = await prepareBusSecrets(dir, topology, {
    ...(options.tlsHosts && { tlsHosts: options.tlsHosts }),
  });
  const cluster = options.cluster && {
    name: options.cluster.name,
    host: options.host,
    port: options.cluster.port,
    routes: options.cluster.routes,
    user: 'route',
    password: await routePassword(dir),
  };
  process.stdout.write(
    busServerConfig(secrets, topology, {
      serverName: options.serverName,
      host: options.host,
      port: options.port,
      storeDir: options.storeDir,
      ...(cluster && { cluster }),
    }),
  );
  process.stderr.write(`secrets in ${dir}: give each service its <name>.nk and ca.pem\n`);
  return 0;
}
