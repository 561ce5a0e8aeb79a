import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { freePort, waitFor } from '@orderflow/testing';
import { demoOrder, GatewayClient, TERMINAL, type PlaceOrderBody } from '../../cli/api.ts';
import { condense } from '../../cli/logs.ts';
import { SERVICES, startSystem, type RunningSystem, type SystemConfig } from '../../cli/system.ts';
import type { OrderView } from '@orderflow/contracts';

/**
 * The whole system as separate processes for a system test: a private nats-server, the fake PSP, the
 * SMTP sink and every service, on free ports, with PGlite in a temporary DATA_DIR. Keeps the last
 * lines of every program's output so a failing wait can say which service misbehaved.
 */
export interface TestSystem {
  readonly system: RunningSystem;
  readonly api: GatewayClient;
  /** Recent warnings and errors of each program, and its last lines. */
  diagnostics(): string;
  /** PSP ledger entries. */
  ledger(): Promise<LedgerEntry[]>;
  setPspFaults(faults: Record<string, number>): Promise<void>;
  mails(): Promise<Mail[]>;
  dispose(): Promise<void>;
}

export interface LedgerEntry {
  readonly kind: 'charge' | 'refund';
  readonly id: string;
  readonly reference: string;
  readonly status: 'succeeded' | 'failed';
  readonly amount: number;
}

export interface Mail {
  readonly id: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly attachments: readonly { filename?: string; contentType: string; size: number }[];
}

const KEEP_LINES = 400;

export async function startTestSystem(
  options: Pick<SystemConfig, 'replicas' | 'env'> = {},
): Promise<TestSystem> {
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-system-'));
  const lines = new Map<string, string[]>();
  const events: string[] = [];
  const keep = (key: string, line: string, store: Map<string, string[]>) => {
    const list = store.get(key) ?? [];
    list.push(line);
    if (list.length > KEEP_LINES) list.splice(0, list.length - KEEP_LINES);
    store.set(key, list);
  };
  const [natsPort, gatewayPort, pspPort, smtpPort, mailboxPort] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );
  let system: RunningSystem;
  try {
    system = await startSystem({
      dataDir,
      natsPort: natsPort!,
      gatewayPort: gatewayPort!,
      pspPort: pspPort!,
      smtpPort: smtpPort!,
      mailboxPort: mailboxPort!,
      ...options,
      baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info' },
      restart: { initialDelayMs: 100, maxDelayMs: 2_000, stableAfterMs: 5_000 },
      stopDeadlineMs: 15_000,
      readyTimeoutMs: 90_000,
      // An interrupted test run takes the children down with it.
      ownProcessGroup: false,
      onLog: (line) => keep(`${line.program}#${line.replica}`, condense(line.line), lines),
      onEvent: (event) => events.push(`${new Date().toISOString()} ${JSON.stringify(event)}`),
    });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`the system did not start:\n${render(lines, events)}`, { cause: error });
  }
  if (system.skipped.length > 0) {
    await system.stop();
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(
      `services missing from services/ (every one of ${SERVICES.join(', ')} is needed): ${system.skipped.join(', ')}`,
    );
  }
  const api = new GatewayClient(system.apiUrl);
  return {
    system,
    api,
    diagnostics: () => render(lines, events),
    async ledger() {
      const response = await fetch(`${system.pspUrl}/ledger`);
      return ((await response.json()) as { entries: LedgerEntry[] }).entries;
    },
    async setPspFaults(faults) {
      const response = await fetch(`${system.pspUrl}/admin/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(faults),
      });
      if (!response.ok) throw new Error(`PUT /admin/faults: ${response.status} ${await response.text()}`);
    },
    async mails() {
      const response = await fetch(`${system.mailboxUrl}/messages`);
      return ((await response.json()) as { messages: Mail[] }).messages;
    },
    async dispose() {
      await system.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

function render(lines: Map<string, string[]>, events: readonly string[]): string {
  const parts: string[] = [];
  const unexpected = events.filter((e) => e.includes('"expected":false') || e.includes('restarting'));
  if (unexpected.length > 0) parts.push(`supervisor events:\n  ${unexpected.join('\n  ')}`);
  for (const [who, list] of lines) {
    const problems = list.filter((l) => /^(WARN|ERROR|FATAL)/.test(l)).slice(-15);
    const last = list.slice(-8);
    parts.push(
      `--- ${who}: ${problems.length} recent warnings/errors\n  ${problems.join('\n  ')}\n  last lines:\n  ${last.join('\n  ')}`,
    );
  }
  return parts.join('\n');
}

/** What a test placed, to check effects at the end. */
export interface PlacedOrder {
  readonly orderId: string;
  readonly customerId: string;
  readonly email: string;
}

export interface Customer {
  readonly customerId: string;
  readonly email: string;
}

export async function registerCustomer(api: GatewayClient): Promise<Customer> {
  const email = `c-${randomUUID()}@example.com`;
  const response = await api.registerCustomer({ email, name: 'Test Customer' });
  if (response.status !== 201 && response.status !== 200)
    throw new Error(`POST /customers answered ${response.status}: ${JSON.stringify(response.body)}`);
  return { customerId: response.body.customerId, email };
}

export async function placeOrder(
  api: GatewayClient,
  customer: Customer,
  options: { token?: string; country?: string; key?: string; body?: PlaceOrderBody } = {},
): Promise<PlacedOrder> {
  const body = options.body ?? demoOrder(customer.customerId, options);
  const response = await api.placeOrder(body, options.key ?? randomUUID());
  if (response.status < 200 || response.status >= 300)
    throw new Error(`POST /orders answered ${response.status}: ${JSON.stringify(response.body)}`);
  return { orderId: response.body.orderId, customerId: customer.customerId, email: customer.email };
}

/** Polls GET /orders/:id until the order is terminal; the error names the order and its last view. */
export async function waitTerminal(sys: TestSystem, orderId: string, timeoutMs = 60_000): Promise<OrderView> {
  let last: unknown;
  try {
    return await waitFor(
      async () => {
        const response = await sys.api.getOrder(orderId);
        last =
          response.status === 200 ? response.body : `${response.status} ${JSON.stringify(response.body)}`;
        return response.status === 200 && TERMINAL.includes(response.body.status) ? response.body : undefined;
      },
      { timeoutMs, intervalMs: 150, message: `order ${orderId} terminal` },
    );
  } catch (error) {
    throw new Error(
      `order ${orderId} did not reach a terminal state within ${timeoutMs} ms; last GET /orders/:id: ` +
        `${JSON.stringify(last)}\n${sys.diagnostics()}`,
      { cause: error },
    );
  }
}

/** Runs `work` over `items` with at most `limit` at once, results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index] as T);
      }
    }),
  );
  return results;
}
