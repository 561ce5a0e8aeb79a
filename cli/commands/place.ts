import { randomUUID } from 'node:crypto';
import { demoOrder, GatewayClient, TERMINAL } from '../api.ts';

export interface PlaceOptions {
  readonly apiUrl: string;
  /** PSP test token: `tok_visa` (default), `tok_decline`, `tok_insufficient_funds`. */
  readonly token: string;
  /** Shipping country (ISO 3166-1 alpha-2; `AQ` has no courier). */
  readonly country: string;
  /** Give up following after this long (default 60 s). */
  readonly timeoutMs: number;
}

/**
 * `orderflow place`: registers a demo customer, places a demo order through the gateway and follows
 * its status until it is terminal, printing each change, then the order's event history.
 */
export async function place(options: PlaceOptions): Promise<number> {
  const anonymous = new GatewayClient(options.apiUrl);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`;

  const customer = await anonymous.registerCustomer({
    email: `demo-${randomUUID().slice(0, 8)}@example.com`,
    name: 'Demo Customer',
  });
  if (customer.status >= 300) {
    say(`registering a customer failed: ${customer.status} ${JSON.stringify(customer.body)}`);
    return 1;
  }
  if (customer.body.token === undefined) {
    say('the gateway answered no token: it trusts an identity provider, not the development key');
    return 1;
  }
  // Everything else as that customer, with the token sign-up gave.
  const api = anonymous.as(customer.body.token);
  const order = demoOrder(customer.body.customerId, { token: options.token, country: options.country });
  const placed = await api.placeOrder(order, randomUUID());
  if (placed.status >= 300) {
    say(`placing the order failed: ${placed.status} ${JSON.stringify(placed.body)}`);
    return 1;
  }
  const { orderId } = placed.body;
  say(`${elapsed()}  order ${orderId} ${placed.body.status} (HTTP ${placed.status})`);

  let last = '';
  let invoiced = false;
  const deadline = started + options.timeoutMs;
  for (;;) {
    const view = await api.getOrder(orderId);
    if (view.status === 200 && view.body.status !== last) {
      last = view.body.status;
      invoiced = view.body.invoiceNumber !== null;
      const details = [
        view.body.payment ? `payment ${view.body.payment.status}` : '',
        view.body.invoiceNumber ? `invoice ${view.body.invoiceNumber}` : '',
        view.body.courier ? `courier ${view.body.courier.courierName ?? view.body.courier.courierId}` : '',
        view.body.cancellationReason ? `reason ${view.body.cancellationReason}` : '',
      ].filter(Boolean);
      say(`${elapsed()}  ${last.padEnd(24)} ${details.join(', ')}`);
      if (TERMINAL.includes(last)) break;
    }
    if (Date.now() > deadline) {
      say(`gave up after ${options.timeoutMs} ms: the order is still ${last || 'unknown to order-status'}`);
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const history = await api.history(orderId);
  if (history.status === 200) {
    say('history:');
    for (const event of history.body)
      say(`  ${String(event.sequence).padStart(3)}  ${event.time}  ${event.type}  (${event.source})`);
  }
  if (invoiced)
    say(
      `invoice: curl -H "authorization: Bearer $TOKEN" -o invoice.pdf ${options.apiUrl}/orders/${orderId}/invoice.pdf` +
        `\n  with TOKEN=${customer.body.token}`,
    );
  return 0;
}
