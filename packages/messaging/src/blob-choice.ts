import { BrokerKind, type BrokerConfig, type BrokerConnection } from './broker.ts';
import { ConfigError } from './errors.ts';
import { FileBlobStores } from './fs/blob-store.ts';
import { NatsBlobStores } from './nats/stores.ts';
import type { BlobStores } from './ports/blob-store.ts';

const BLOB_DIR_REQUIRED =
  'BLOB_DIR is required with BROKER=rabbitmq (the directory the invoice PDFs are shared in)';

/**
 * Checks `blobDir` (`BLOB_DIR`) against the broker: on RabbitMQ there is no object store, so the
 * services sharing blobs (create-invoice writes invoice PDFs, email-notify and the gateway read them)
 * need a directory they all see; on NATS it is ignored. One line per problem, for `ConfigError`.
 */
export function blobDirProblems(broker: BrokerConfig, blobDir: string | undefined): string[] {
  return broker.kind === BrokerKind.RabbitMQ && blobDir === undefined ? [BLOB_DIR_REQUIRED] : [];
}

/**
 * The blob stores of a running service: the JetStream object store on NATS, else
 * {@link FileBlobStores} on `blobDir`. Throws `ConfigError` on RabbitMQ without `blobDir`.
 */
export function blobStoresFor(connection: BrokerConnection, blobDir: string | undefined): BlobStores {
  if (connection.kind === BrokerKind.Nats) return new NatsBlobStores(connection.nc);
  if (blobDir === undefined) throw new ConfigError([BLOB_DIR_REQUIRED]);
  return new FileBlobStores(blobDir);
}
