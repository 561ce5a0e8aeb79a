import { nkeyAuthenticator } from '@nats-io/nats-core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { MessagingError } from './errors.ts';
import { readSeedFile } from './security/secrets.ts';

export interface ConnectionConfig {
  /** One URL or several (a cluster; also as one comma-separated string); the client fails over between them. */
  servers: string | string[];
  /** Connection name shown by the server's monitoring. */
  name: string;
  /** Give up after this many reconnect attempts; -1 (default) = never give up. */
  maxReconnectAttempts?: number;
  /** Wait between reconnect attempts (default 1000 ms). */
  reconnectTimeWaitMs?: number;
  /**
   * Keep trying until the first connect succeeds (default true: a service started before NATS
   * waits for it). False: reject at once when no server answers (a command line tool).
   */
  waitOnFirstConnect?: boolean;
  /** Authenticate as the nkey user whose seed (`SU…`) is in this file (default: no credentials). */
  nkeySeedFile?: string;
  /** Require TLS and verify the server's certificate against this CA (PEM file). */
  caFile?: string;
  /**
   * Prefix of every reply inbox of this connection (default `_INBOX`). A server with per-identity
   * permissions gives each identity its own (`_INBOX_<identity>`), so no one else can read its replies.
   */
  inboxPrefix?: string;
}

/** Server features the toolkit relies on, and the version that brought each. */
export const REQUIRED_SERVER_VERSION = '2.9.0';

/** Features missing from older servers that callers may ask about. */
export interface ServerFeatures {
  version: string;
  /** `filter_subjects` on one consumer (2.10). */
  multipleFilterSubjects: boolean;
  /** Atomic batch publish (2.12). */
  atomicBatch: boolean;
  /** Per-message TTL (2.11). */
  messageTtl: boolean;
}

function parseVersion(version: string): [number, number, number] {
  const [major = 0, minor = 0, patch = 0] = version.split('-')[0]!.split('.').map(Number);
  return [major, minor, patch];
}

export function compareVersions(a: string, b: string): number {
  const [x, y] = [parseVersion(a), parseVersion(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return 0;
}

export function serverFeatures(version: string): ServerFeatures {
  return {
    version,
    multipleFilterSubjects: compareVersions(version, '2.10.0') >= 0,
    messageTtl: compareVersions(version, '2.11.0') >= 0,
    atomicBatch: compareVersions(version, '2.12.0') >= 0,
  };
}

/** `nats://a:4222,nats://b:4222` → the URLs, so one `NATS_URL` can name every node of a cluster. */
export function splitServers(servers: string): string[] {
  return servers
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}

/**
 * Connects (with the nkey, TLS and inbox prefix given, if any) with unlimited reconnects (the client buffers publishes while reconnecting), async stack
 * traces off (they double the CPU cost of every request), and checks the server version.
 */
export async function connectNats(
  config: ConnectionConfig,
): Promise<{ nc: NatsConnection; features: ServerFeatures }> {
  const nc = await connect({
    servers: typeof config.servers === 'string' ? splitServers(config.servers) : config.servers,
    name: config.name,
    maxReconnectAttempts: config.maxReconnectAttempts ?? -1,
    reconnectTimeWait: config.reconnectTimeWaitMs ?? 1_000,
    waitOnFirstConnect: config.waitOnFirstConnect ?? true,
    noAsyncTraces: true,
    ...(config.nkeySeedFile !== undefined && {
      authenticator: nkeyAuthenticator(await readSeedFile(config.nkeySeedFile)),
    }),
    ...(config.caFile !== undefined && { tls: { caFile: config.caFile } }),
    ...(config.inboxPrefix !== undefined && { inboxPrefix: config.inboxPrefix }),
  });
  const version = nc.info?.version ?? '0.0.0';
  if (compareVersions(version, REQUIRED_SERVER_VERSION) < 0) {
    await nc.close();
    throw new MessagingError(
      'SERVER_FEATURE_MISSING',
      `nats-server ${version} is too old: ${REQUIRED_SERVER_VERSION} or newer is required`,
    );
  }
  if (!nc.info?.jetstream) {
    await nc.close();
    throw new MessagingError(
      'SERVER_FEATURE_MISSING',
      `nats-server ${version} at ${nc.getServer()} has JetStream disabled (start it with -js)`,
    );
  }
  return { nc, features: serverFeatures(version) };
}

/** The reply-inbox prefix `nc` was opened with (`_INBOX` unless {@link ConnectionConfig.inboxPrefix} set one). */
export function connectionInboxPrefix(nc: NatsConnection): string {
  // nats.js keeps the options it was opened with on the connection object, outside its public type.
  const options = (nc as { options?: { inboxPrefix?: string } }).options;
  return options?.inboxPrefix || '_INBOX';
}
