import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { OrderingTopology } from '@orderflow/contracts';
import { JetStreamEventLog, rebuildProjection, type RebuildResult } from '@orderflow/eventstore';
import { JetStreamPublisher } from '@orderflow/messaging';
import { orderAggregate, orderSummaries } from '@orderflow/order-storage';
import type { SqlStore } from '@orderflow/sql';

/** Where the progress goes: a terminal gets one bar redrawn in place, anything else a line per 10 %. */
export interface ProgressOutput {
  write(text: string): void;
  readonly isTTY?: boolean;
}

const BAR_WIDTH = 30;

/** `[##########....................]  33%  1000/3000 commits  #4711` */
export function progressBar(applied: number, total: number, sequence: number): string {
  const ratio = total === 0 ? 1 : Math.min(1, applied / total);
  const filled = Math.round(ratio * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}%  ${applied}/${total} commits  #${sequence}`;
}

/**
 * `orderflow replay`: rebuilds order-storage's read model (`order_summaries`) from the order log,
 * into a fresh generation swapped in at the end (the running projection, if any, carries on without
 * a gap), drawing a progress bar. Returns what the rebuild did.
 */
export async function replay(options: {
  nc: NatsConnection;
  store: SqlStore;
  topology: OrderingTopology;
  out: ProgressOutput;
  batchSize?: number;
}): Promise<RebuildResult> {
  const { nc, store, topology, out } = options;
  const js = jetstream(nc);
  const log = new JetStreamEventLog(
    js,
    await jetstreamManager(nc),
    new JetStreamPublisher(js, { source: 'orderflow/cli' }),
  );
  let lastDecile = -1;
  const started = Date.now();
  const result = await rebuildProjection({
    log,
    sql: store,
    source: orderAggregate(topology),
    projection: orderSummaries,
    ...(options.batchSize !== undefined && { batchSize: options.batchSize }),
    onProgress: ({ applied, total, sequence }) => {
      const bar = progressBar(applied, total, sequence);
      if (out.isTTY) {
        out.write(`\r${bar}`);
        return;
      }
      const decile = total === 0 ? 10 : Math.floor((applied / total) * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        out.write(`${bar}\n`);
      }
    },
  });
  if (out.isTTY) out.write('\n');
  out.write(
    `rebuilt ${orderSummaries.name}: generation ${result.generation}, ${result.applied} commit(s) up to #${result.sequence} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
  return result;
}
