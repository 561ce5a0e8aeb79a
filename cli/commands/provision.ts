import { orderingTopology } from '@orderflow/contracts';
import { connectNats } from '@orderflow/messaging';
import type { NatsTarget } from '../bus.ts';
import { provisionOrdering, startProvisioningResponder } from '../provision.ts';

/**
 * `orderflow provision [--serve]`: as the provisioning identity, creates (or updates to match) the
 * streams, the KV bucket and the object store; with `--serve`, then answers the services' consumer
 * provisioning requests until SIGINT/SIGTERM (run it beside services on your own NATS).
 */
export async function provision(
  nats: NatsTarget,
  options: { serve: boolean; replicas: number },
): Promise<number> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const { nc } = await connectNats({
    ...nats,
    name: 'orderflow-provisioner',
    maxReconnectAttempts: options.serve ? -1 : 0,
  });
  const topology = orderingTopology();
  try {
    await provisionOrdering(nc, topology, { replicas: options.replicas });
    say(`provisioned streams, KV bucket and object store at ${nats.servers} (replicas ${options.replicas})`);
    if (!options.serve) return 0;
    const responder = await startProvisioningResponder(nc, topology, (error, identity) =>
      say(`provisioning for ${identity} failed: ${(error as Error).message}`),
    );
    say('answering consumer provisioning requests (Ctrl-C to stop)');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    responder.stop();
    return 0;
  } finally {
    await nc.close();
  }
}
