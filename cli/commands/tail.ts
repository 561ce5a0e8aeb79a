import { OrderingTopology, OrderStatusChanged } from '@orderflow/contracts';
import { NatsTransport } from '@orderflow/messaging';
import type { NatsTarget } from '../bus.ts';
import { connectOrderflow } from '../nats.ts';

/**
 * `orderflow tail`: prints live `order.status-changed` notifications (core NATS, best effort: only
 * what happens while it runs) until SIGINT/SIGTERM.
 */
export async function tail(nats: NatsTarget, options: { orderId?: string }): Promise<number> {
  const nc = await connectOrderflow(nats, 'orderflow-cli-tail', { reconnect: true });
  const transport = await NatsTransport.create(nc, { source: 'orderflow/cli' });
  const subject = options.orderId
    ? OrderingTopology.notifications.statusChanged(options.orderId)
    : OrderingTopology.notifications.statusChangedAll;
  // Before saying it listens: whoever reacts to that line by signalling must find the handlers there.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  process.stderr.write(`listening on ${subject} at ${nats.servers} (Ctrl-C to stop)\n`);
  transport.listen(OrderStatusChanged, subject, (event) => {
    const { orderId, status, previousStatus, cause, version } = event.data;
    process.stdout.write(
      `${event.data.changedAt}  ${orderId}  ${(previousStatus ?? '-').padEnd(22)} → ${status.padEnd(22)} ` +
        `v${version} (${cause})\n`,
    );
  });
  await stopped;
  await transport.close();
  await nc.close();
  return 0;
}
