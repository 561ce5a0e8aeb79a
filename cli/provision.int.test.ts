import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { orderingTopology } from '@orderflow/contracts';
import { startNatsCluster } from '@orderflow/testing';
import { provisionOrdering } from './provision.ts';

test('provisioning a cluster that cannot answer yet waits for it (up to its deadline), then creates R3 streams', async (t) => {
  const cluster = await startNatsCluster(3);
  t.after(() => cluster.dispose());
  const [first, ...others] = cluster.nodes;
  const nc = await connect({ servers: first!.url, reconnectTimeWait: 100 });
  t.after(() => nc.close());
  // Two of three nodes down: the one left has no quorum, so JetStream cannot answer, as in a cluster
  // that has only just started and not elected its meta leader.
  await Promise.all(others.map((node) => node.stop()));

  const topology = orderingTopology();
  await assert.rejects(
    provisionOrdering(nc, topology, { replicas: 3, readyTimeoutMs: 1_000 }),
    'a deadline that passes fails the provisioning with the last error',
  );
  // Settled into a value, so a failure is this test's assertion below, not an unhandled rejection.
  const provisioned = provisionOrdering(nc, topology, { replicas: 3 }).then(
    () => 'provisioned',
    (error: unknown) => error,
  );
  // Longer than one JetStream request's timeout: a provisioning that does not wait has failed by then.
  await sleep(6_000);
  await Promise.all(others.map((node) => node.start()));
  assert.equal(await provisioned, 'provisioned');
  const jsm = await jetstreamManager(nc);
  for (const stream of topology.streams) {
    assert.equal((await jsm.streams.info(stream.name)).config.num_replicas, 3, stream.name);
  }
});
