import { setTimeout as sleep } from 'node:timers/promises';
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { NoRespondersError, TimeoutError, type NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { orderingConsumerGrants, type OrderingTopology } from '@orderflow/contracts';
import {
  BucketSubjects,
  deadLetterStream,
  ensureStream,
  ProvisioningError,
  ProvisioningResponder,
  type StreamDeclaration,
} from '@orderflow/messaging';

/**
 * What the provisioning identity owns: every stream, the KV bucket and the object store of the
 * ordering context (created here, before any service starts), and the durable consumers (created on
 * request by {@link startProvisioningResponder}, with the tuning the service asks for, but only the
 * names, streams and filters declared for it). Services hold no right to create, update or delete any
 * of these.
 */

/**
 * The streams of the context, the event log and the dead letters, each with `replicas`: what the
 * services declare under the same STREAM_REPLICAS, so none of them finds a stream to update.
 */
function orderingStreams(topology: OrderingTopology, replicas: number): StreamDeclaration[] {
  return [...topology.streams.map((stream) => ({ ...stream, replicas })), deadLetterStream({ replicas })];
}

async function protect(
  jsm: JetStreamManager,
  stream: string,
  flags: { deny_delete?: boolean; deny_purge?: boolean; allow_rollup_hdrs?: boolean },
): Promise<void> {
  const { config } = await jsm.streams.info(stream);
  const wanted = { ...config, ...flags };
  if ((Object.keys(flags) as (keyof typeof flags)[]).some((key) => wanted[key] !== config[key]))
    await jsm.streams.update(stream, wanted);
}

/**
 * Creates a bucket's stream with its protection in one step when it does not exist yet. Created and
 * then updated to deny deletes, the stream made a restarted nats-server 2.9.10 cluster node replay the
 * create after the update ("can not cancel deny message deletes") and crash; one create has nothing
 * to replay out of order. An existing stream is left to `protect`.
 */
async function createProtected(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }) {
  try {
    await jsm.streams.info(config.name);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    await jsm.streams.add(config);
  }
}

/** JetStream's "no suitable peers for placement" (`JSClusterNoPeersErrF`, a 400). */
const NO_SUITABLE_PEERS = 10005;

/**
 * Whether JetStream may still become able to answer: no answer or no responder yet, "temporarily
 * unavailable" (503), as a cluster that has just started answers until it has elected its meta leader,
 * or no peers to place a replicated stream on, until they have reported (a cluster too small for the
 * replicas gives the same answer, and fails at the deadline with it). Looks through the
 * `ProvisioningError` a stream declaration wraps the answer in.
 */
function notAnsweringYet(error: unknown): boolean {
  const answer = error instanceof ProvisioningError ? error.cause : error;
  return (
    answer instanceof TimeoutError ||
    answer instanceof NoRespondersError ||
    // nats.js's answer to a server without JetStream yet (the class is not exported).
    (answer instanceof Error && answer.name === 'JetStreamNotEnabled') ||
    (answer instanceof JetStreamApiError && (answer.status === 503 || answer.code === NO_SUITABLE_PEERS))
  );
}

/** Runs `step` again while JetStream is not answering yet (see {@link notAnsweringYet}), until `deadline`. */
async function whenJetStreamAnswers<T>(deadline: number, step: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if (!notAnsweringYet(error) || Date.now() >= deadline) throw error;
      await sleep(250);
    }
  }
}

/**
 * Creates (or updates to match) the streams, the status KV bucket and the invoice object store.
 * Idempotent. The event log denies delete and purge; the dead letters deny purge (a redrive or a
 * discard deletes one letter, and only the operator may); the KV bucket denies delete, purge and
 * roll-ups; the object store denies delete (purge stays: nats-server 2.9 requires it for the roll-up
 * every object's metadata is written with) and only the provisioner holds the purge API.
 */
export async function provisionOrdering(
  nc: NatsConnection,
  topology: OrderingTopology,
  options: { replicas?: number; readyTimeoutMs?: number } = {},
): Promise<void> {
  const replicas = options.replicas ?? 1;
  // A cluster started with the system may not answer yet: wait for it (creating a manager asks for the
  // account's JetStream info), then for each stream (the first replicated ones may find their peers not
  // reported yet).
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  await whenJetStreamAnswers(deadline, () => jetstreamManager(nc, { timeout: 2_000 }));
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  for (const stream of orderingStreams(topology, replicas)) {
    await whenJetStreamAnswers(deadline, () => ensureStream(jsm, stream));
  }
  const kv = topology.kv.orderStatus;
  await createProtected(jsm, {
    name: BucketSubjects.kvStream(kv),
    subjects: [`$KV.${kv}.>`],
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: 1,
    storage: StorageType.File,
    discard: DiscardPolicy.New,
    allow_direct: true,
    num_replicas: replicas,
    allow_rollup_hdrs: false,
    deny_delete: true,
    deny_purge: true,
    description: 'order-status: the view of each order (key = order id)',
  });
  await new Kvm(nc).create(topology.kv.orderStatus, {
    history: 1,
    replicas,
    description: 'order-status: the view of each order (key = order id)',
  });
  // No roll-ups (a key purge, or a `Nats-Rollup: all` that would wipe the bucket): order-status only puts.
  await protect(jsm, BucketSubjects.kvStream(topology.kv.orderStatus), {
    allow_rollup_hdrs: false,
    deny_delete: true,
    deny_purge: true,
  });
  const invoices = topology.objectStores.invoices;
  await createProtected(jsm, {
    name: BucketSubjects.objectStream(invoices),
    subjects: [`$O.${invoices}.C.>`, `$O.${invoices}.M.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.New,
    allow_direct: true,
    allow_rollup_hdrs: true,
    num_replicas: replicas,
    deny_delete: true,
    description: 'create-invoice: invoice PDFs',
  });
  await new Objm(nc).create(topology.objectStores.invoices, {
    replicas,
    description: 'create-invoice: invoice PDFs',
  });
  await protect(jsm, BucketSubjects.objectStream(topology.objectStores.invoices), { deny_delete: true });
}

/** Answers the services' consumer provisioning requests until stopped (see `ProvisioningResponder`). */
export async function startProvisioningResponder(
  nc: NatsConnection,
  topology: OrderingTopology,
  onError?: (error: unknown, identity: string) => void,
): Promise<ProvisioningResponder> {
  const responder = new ProvisioningResponder(
    nc,
    await jetstreamManager(nc),
    orderingConsumerGrants(topology),
    {
      ...(onError && { onError }),
    },
  );
  await nc.flush();
  return responder;
}
