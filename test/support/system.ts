import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BrokerKind, removeRabbitUsers } from '@orderflow/messaging';
import { seedPgliteDataDir } from '@orderflow/sql/testing';
import { createRabbitVhost, freePort, waitFor, type RabbitVhost } from '@orderflow/testing';
import { demoOrder, GatewayClient, TERMINAL, type PlaceOrderBody } from '../../cli/api.ts';
import { condense } from '../../cli/logs.ts';
import { mapLimit } from '../../cli/map-limit.ts';
import {
  createSystem,
  RABBIT_DEFAULTS,
  SERVICES,
  type RabbitSystem,
  type RunningSystem,
  type Runtime,
  type SystemConfig,
} from '../../cli/system.ts';
import type { OrderView } from '@orderflow/contracts';

export { mapLimit };

/**
 * The whole system as separate processes for a system test: a private nats-server (or, with `broker:
 * 'rabbitmq'`, a fresh vhost of the local RabbitMQ, deleted with the system's users by `dispose`),
 * the fake PSP, the SMTP sink and every service, on free ports, with PGlite in a temporary DATA_DIR.
 * Keeps the last lines of every program's output so a failing wait can say which service misbehaved.
 */
export interface TestSystem {
  readonly system: RunningSystem;
  /** The gateway as an operator (every order); `api.as(customer.token)` acts as a customer. */
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

const SYSTEM_TEST_LIMITS: Record<string, string> = {
  RATE_LIMIT_WRITES_PER_S: '100000',
  RATE_LIMIT_WRITES_BURST: '100000',
  RATE_LIMIT_SIGNUPS_PER_S: '100000',
  RATE_LIMIT_SIGNUPS_BURST: '100000',
};

/** The services with a SQL store (a dependency on `@orderflow/sql`): PGlite in `DATA_DIR/<service>`. */
function sqlServices(): string[] {
  return SERVICES.filter((name) => {
    try {
      const manifest = JSON.parse(
        readFileSync(new URL(`../../services/${name}/package.json`, import.meta.url), 'utf8'),
      ) as { dependencies?: Record<string, string> };
      return manifest.dependencies?.['@orderflow/sql'] !== undefined;
    } catch {
      return false;
    }
  });
}

/**
 * How the system tests run the programs: `dist` (bundled, as `npm start` does) when the runner built
 * them and said so in `ORDERFLOW_TEST_RUNTIME` (scripts/run-tests.mjs), else the sources through tsx,
 * so a file run on its own never runs a stale build.
 */
export function testRuntime(): Runtime {
  return process.env.ORDERFLOW_TEST_RUNTIME === 'dist' ? 'dist' : 'tsx';
}

export async function startTestSystem(
  options: Pick<SystemConfig, 'replicas' | 'env' | 'chaosIdentity' | 'broker'> & {
    /**
     * Start on an empty DATA_DIR, as `up` does the first time: every SQL service creates its PGlite
     * database (initdb, seconds of CPU each, all at once). Default: the databases are initialised
     * beforehand ({@link seedPgliteDataDir}) and the services reopen them, as on any later start.
     */
    firstStart?: boolean;
  } = {},
): Promise<TestSystem> {
  const { firstStart = false, ...config } = options;
  const vhost = config.broker === BrokerKind.RabbitMQ ? await createRabbitVhost() : undefined;
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-system-'));
  if (!firstStart) await Promise.all(sqlServices().map((name) => seedPgliteDataDir(join(dataDir, name))));
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
  let system: RunningSystem | undefined;
  /** Stops what runs and removes what the run made: processes, data, the vhost and its users. */
  const teardown = async () => {
    try {
      await system?.stop();
    } finally {
      await removeTestRabbit(vhost, system?.rabbit);
      await rm(dataDir, { recursive: true, force: true });
    }
  };
  try {
    system = await createSystem({
      dataDir,
      runtime: testRuntime(),
      ...(vhost
        ? {
            broker: BrokerKind.RabbitMQ,
            rabbitVhost: vhost.name,
            // 60 s heartbeats instead of 15: a process starved of CPU for half a minute on a machine
            // shared with other runs (seen: order-status during a burst at load 38 on two cores) would
            // lose its connection for good and be restarted, which the tests count. NATS tolerates
            // that long by default (pings every 2 minutes).
            amqpUrl: `${RABBIT_DEFAULTS.amqpUrl}?heartbeat=60`,
          }
        : { natsPort: natsPort! }),
      gatewayPort: gatewayPort!,
      pspPort: pspPort!,
      smtpPort: smtpPort!,
      mailboxPort: mailboxPort!,
      ...config,
      env: {
        ...config.env,
        // One client on 127.0.0.1 placing hundreds of orders a second: above the gateway's per-client
        // limits, which services/gateway/test/authorization.int.test.ts checks.
        gateway: { ...SYSTEM_TEST_LIMITS, ...config.env?.gateway },
      },
      baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info' },
      restart: { initialDelayMs: 100, maxDelayMs: 2_000, stableAfterMs: 5_000 },
      stopDeadlineMs: 15_000,
      // Every service compiles PGlite at once: minutes on two cores shared with other runs.
      readyTimeoutMs: 180_000,
      // An interrupted test run takes the children down with it.
      ownProcessGroup: false,
      onLog: (line) => keep(`${line.program}#${line.replica}`, condense(line.line), lines),
      onEvent: (event) => events.push(`${new Date().toISOString()} ${JSON.stringify(event)}`),
    });
    await system.supervisor.start();
  } catch (error) {
    await teardown();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`the system did not start (${reason}):\n${render(lines, events)}`, { cause: error });
  }
  if (system.skipped.length > 0) {
    await teardown();
    throw new Error(
      `services missing from services/ (every one of ${SERVICES.join(', ')} is needed): ${system.skipped.join(', ')}`,
    );
  }
  const api = new GatewayClient(system.apiUrl, 30_000, await system.operatorToken('operator:test'));
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
    dispose: teardown,
  };
}

/** Deletes a test vhost and the users a system made for it. */
async function removeTestRabbit(
  vhost: RabbitVhost | undefined,
  rabbit: RabbitSystem | undefined,
): Promise<void> {
  if (!vhost) return;
  // One `rabbitmqctl` per user (about a second of CPU each), so at once.
  await Promise.all(
    (rabbit?.identities ?? []).map((i) => removeRabbitUsers([i], { userPrefix: rabbit?.userPrefix ?? '' })),
  );
  await vhost.dispose();
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
  /** The bearer token sign-up answered. */
  readonly token: string;
}

/** Signs a customer up (anonymously, as a browser would) and keeps the token it answers. */
export async function registerCustomer(api: GatewayClient): Promise<Customer> {
  const email = `c-${randomUUID()}@example.com`;
  const response = await api.as(undefined).registerCustomer({ email, name: 'Test Customer' });
  if (response.status !== 201 || response.body.token === undefined)
    throw new Error(`POST /customers answered ${response.status}: ${JSON.stringify(response.body)}`);
  return { customerId: response.body.customerId, email, token: response.body.token };
}

export async function placeOrder(
  api: GatewayClient,
  customer: Customer,
  options: { token?: string; country?: string; key?: string; body?: PlaceOrderBody } = {},
): Promise<PlacedOrder> {
  const body = options.body ?? demoOrder(customer.customerId, options);
  const response = await api.as(customer.token).placeOrder(body, options.key ?? randomUUID());
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

/** No effect missing or repeated; the lists of {@link effectsProblems} when all is well. */
export const NO_EFFECT_PROBLEMS = {
  notTerminal: [],
  money: [],
  invoices: [],
  missingMails: [],
  unexpectedMails: [],
  mailsTwice: [],
} as const satisfies Record<string, readonly string[]>;

/**
 * The "effects happened once" check of test/system.e2e.test.ts over `orders` and `customers` (every
 * order and customer of the system): each order terminal, PSP ledger net of refunds = one charge per
 * confirmed order, invoice and credit-note numbers 1..n without gaps, invoices − credit notes = confirmed
 * orders, exactly the expected mails, none twice, no invoice mail after the cancellation mail.
 */
export async function effectsProblems(
  sys: TestSystem,
  orders: readonly PlacedOrder[],
  customers: readonly Customer[],
): Promise<Record<keyof typeof NO_EFFECT_PROBLEMS, string[]>> {
  const views = await mapLimit(orders, 10, async (o) => (await sys.api.getOrder(o.orderId)).body);
  const notTerminal = views.flatMap((v) =>
    v.status === 'confirmed' || v.status === 'cancelled' ? [] : [`${v.orderId}: ${v.status}`],
  );
  const ledger = await sys.ledger();
  const money: string[] = [];
  for (const view of views) {
    const entries = ledger.filter((e) => e.reference === view.orderId);
    const charges = entries.filter((e) => e.kind === 'charge' && e.status === 'succeeded').length;
    const refunds = entries.filter((e) => e.kind === 'refund').length;
    const kept = view.status === 'confirmed' ? 1 : 0;
    if (charges > 1 || refunds > 1 || charges - refunds !== kept)
      money.push(`${view.orderId} (${view.status}): ${charges} charges, ${refunds} refunds`);
    if ((refunds === 1) !== (view.payment?.status === 'refunded'))
      money.push(`${view.orderId}: ${refunds} refunds but payment ${JSON.stringify(view.payment)}`);
  }
  // The books: two gapless series (invoices `<year>-<n>`, credit notes `CN-<year>-<n>`), every refunded
  // invoice credited, so invoices − credit notes = confirmed orders.
  const gapless = (series: string, numbers: (string | null)[]) =>
    numbers
      .flatMap((n) => (n === null ? [] : [Number(n.split('-').at(-1))]))
      .sort((a, b) => a - b)
      .flatMap((n, i) => (n === i + 1 ? [] : [`${series}: position ${i + 1} holds ${n}`]));
  const invoices = [
    ...gapless(
      'invoices',
      views.map((v) => v.invoiceNumber),
    ),
    ...gapless(
      'credit notes',
      views.map((v) => v.creditNoteNumber),
    ),
  ];
  for (const v of views) {
    if (v.status === 'confirmed' && (v.invoiceNumber === null || v.creditNoteNumber !== null))
      invoices.push(`${v.orderId} confirmed: invoice ${v.invoiceNumber}, credit note ${v.creditNoteNumber}`);
    if (v.payment?.status === 'refunded' && v.invoiceNumber !== null && v.creditNoteNumber === null)
      invoices.push(`${v.orderId} refunded: invoice ${v.invoiceNumber} not credited`);
  }
  const count = (f: (v: OrderView) => boolean) => views.filter(f).length;
  const [invoiced, credited, confirmed] = [
    count((v) => v.invoiceNumber !== null),
    count((v) => v.creditNoteNumber !== null),
    count((v) => v.status === 'confirmed'),
  ];
  if (invoiced - credited !== confirmed)
    invoices.push(`${invoiced} invoices − ${credited} credit notes ≠ ${confirmed} confirmed`);

  // A cancelled order's invoice mail may be left out (then the credit note mail carries the invoice),
  // but is never sent after the cancellation mail.
  const expected = new Set<string>(customers.map((c) => `${c.customerId} welcome`));
  const optional = new Set<string>();
  for (const v of views) {
    expected.add(`${v.orderId} order_placed`);
    if (v.payment?.status === 'declined') expected.add(`${v.orderId} payment_declined`);
    if (v.invoiceNumber !== null)
      (v.status === 'cancelled' ? optional : expected).add(`${v.orderId} invoice`);
    if (v.courier !== null) expected.add(`${v.orderId} courier_assigned`);
    if (v.status === 'cancelled') expected.add(`${v.orderId} order_cancelled`);
    if (v.creditNoteNumber !== null) expected.add(`${v.orderId} credit_note`);
  }
  const mails = (await sys.mails()).map(
    (m) => `${m.headers['x-orderflow-key']} ${m.headers['x-orderflow-kind']}`,
  );
  const invoiceAfterCancellation = mails.flatMap((m, i) => {
    const [key, kind] = m.split(' ');
    return kind === 'invoice' && mails.slice(0, i).includes(`${key} order_cancelled`) ? [m] : [];
  });
  return {
    notTerminal,
    money,
    invoices,
    missingMails: [...expected].filter((m) => !mails.includes(m)),
    unexpectedMails: [
      ...mails.filter((m) => !expected.has(m) && !optional.has(m)),
      ...invoiceAfterCancellation.map((m) => `${m} after the cancellation`),
    ],
    mailsTwice: mails.filter((m, i) => mails.indexOf(m) !== i),
  };
}

/**
 * Waits (invoices and mails may trail the terminal state) until {@link effectsProblems} finds nothing,
 * and returns the last findings: compare them with {@link NO_EFFECT_PROBLEMS}.
 */
export async function settledEffects(
  sys: TestSystem,
  orders: readonly PlacedOrder[],
  customers: readonly Customer[],
  timeoutMs = 30_000,
): Promise<Record<string, string[]>> {
  let last: Record<string, string[]> = {};
  await waitFor(
    async () => {
      last = await effectsProblems(sys, orders, customers);
      return Object.values(last).every((list) => list.length === 0);
    },
    { timeoutMs, intervalMs: 500 },
  ).catch(() => undefined);
  return last;
}
