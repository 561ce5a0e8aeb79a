import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { orderingTopology, type OrderingTopology, type OrderView } from '@orderflow/contracts';
import { busServerConfig, PERMISSION_VIOLATION, prepareBusSecrets } from '../bus.ts';
import { removeRabbitUsers } from '@orderflow/messaging';
import {
  createRabbitVhost,
  freePort,
  startNatsCluster,
  type NatsCluster,
  type RabbitVhost,
} from '@orderflow/testing';
import { GatewayClient, TERMINAL, type HistoryEvent } from '../api.ts';
import { mapLimit } from '../map-limit.ts';
import type { LogLine, SupervisorEvent } from '../supervisor.ts';
import { createSystem, RABBIT_DEFAULTS, SERVICES, type RunningSystem, type Runtime } from '../system.ts';
import { natsChaosBus, rabbitChaosBus, type ChaosBroker, type ChaosBus } from './bus.ts';
import { createDatabase, type ChaosDatabase } from './database.ts';
import {
  faultClassesFor,
  faultProblems,
  injectFault,
  planFaults,
  type BrokerMode,
  type FaultClass,
  type FaultRecord,
} from './faults.ts';
import { checkInvariants, type InvariantReport, type LedgerEntry, type Mail } from './invariants.ts';
import { LoadDriver, type AnswerTally } from './load.ts';
import { PgProxy } from './pg-proxy.ts';
import type { PoisonMessage } from './poison.ts';
import { RabbitNode, RabbitRefusalLog } from './rabbit-node.ts';
import { SeededRandom } from './random.ts';

/**
 * The fault-injection harness: starts the real system (every service a process, a real broker — NATS
 * on one node or a 3-node JetStream cluster with R3 streams, or RabbitMQ on a vhost of its own —,
 * PostgreSQL behind a cuttable link), drives
 * orders through the HTTP API, injects a seeded plan of faults while the load runs, waits until the
 * system is quiet and checks the invariants (see invariants.ts). `npm run chaos` and the chaos
 * system test both call {@link runChaos}.
 */

export interface ChaosOptions {
  /** Orders to place (plus one probe per fault). */
  orders: number;
  seed: number;
  /** Orders per second the load aims at (default 10). */
  ratePerSecond?: number;
  /**
   * The broker the system runs on (default `nats`). `rabbitmq`: the RabbitMQ node of `amqpUrl`, on a
   * fresh vhost deleted afterwards; its `broker-restart` fault restarts that node, so run it on a
   * node you own.
   */
  broker?: ChaosBroker;
  /** NATS: `single`, one private nats-server; `cluster`, three nodes, every stream R3 (default single). */
  nats?: 'single' | 'cluster';
  /**
   * RabbitMQ: the node, without credentials or vhost (default `amqp://127.0.0.1:5672`); it must be the
   * node `rabbitmqctl` administers on this machine (vhost, users, restart, log).
   */
  amqpUrl?: string;
  /** Fault classes to inject (default: all that fit the broker mode, see `faultClassesFor`). */
  faults?: readonly FaultClass[];
  /** Each service is SIGKILLed this many times (default 2). */
  killsPerService?: number;
  /** PostgreSQL the run gets a fresh database on (it is dropped afterwards). */
  databaseUrl: string;
  /** payment-processor replicas (default 3). */
  paymentReplicas?: number;
  /** Length of a PostgreSQL outage (default 10–20 s). */
  pgOutageMs?: { min: number; max: number };
  /** How long the system may take to become quiet after the load (default 300 000 ms). */
  settleTimeoutMs?: number;
  /** Progress, about every second. */
  onProgress?: (progress: ChaosProgress) => void;
  /** Environment every program inherits (PATH to find `nats-server`, HOME…); service settings are never taken from it. */
  baseEnv: Record<string, string | undefined>;
  /** `LOG_LEVEL` of every program (default `warn`; `info` logs each mail sent, each start and stop). */
  logLevel?: 'warn' | 'info' | 'debug';
  /** How the programs run (`SystemConfig.runtime`, default `tsx`: the sources). */
  runtime?: Runtime;
  /** Every line the system's programs print. */
  onLog?: (line: LogLine) => void;
  /** Harness milestones (started, fault injected…), for the operator. */
  onNote?: (note: string) => void;
  /**
   * Aborting it stops the run: it rejects with {@link ChaosInterruptedError} once everything it
   * started is stopped and its database dropped.
   */
  signal?: AbortSignal;
}

export class ChaosInterruptedError extends Error {
  override name = 'ChaosInterruptedError';
}

/** Options that cannot make a run (every problem in the message). */
export class ChaosOptionsError extends Error {
  override name = 'ChaosOptionsError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}

function interrupted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new ChaosInterruptedError('the chaos run was interrupted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

export interface ChaosProgress {
  readonly phase: 'starting' | 'load' | 'settling' | 'checking';
  readonly placed: number;
  readonly total: number;
  readonly terminal: number;
  readonly faultsDone: number;
  readonly faultsTotal: number;
  readonly currentFault: string | undefined;
}

export interface ChaosReport {
  readonly seed: number;
  readonly broker: ChaosBroker;
  /** NATS only. */
  readonly nats: 'single' | 'cluster';
  readonly ordersRequested: number;
  readonly ordersAccepted: number;
  /** Accepted orders per second over the load phase. */
  readonly ordersPerSecond: number;
  readonly loadDurationMs: number;
  /** From the end of the load until every order was terminal. */
  readonly settleDurationMs: number;
  readonly totalDurationMs: number;
  readonly faults: readonly FaultRecord[];
  /** Faults injected per class. */
  readonly faultCounts: Partial<Record<FaultClass, number>>;
  readonly answers: AnswerTally['counts'];
  /** Median time from acceptance to terminal, of the orders whose terminal notification was seen. */
  readonly medianOrderLatencyMs: number | undefined;
  /** Supervisor restarts per program (crashes and kills). */
  readonly restarts: Record<string, number>;
  /** Log lines at level error or fatal per program. */
  readonly errorLogs: Record<string, number>;
  readonly invariants: InvariantReport['invariants'];
  readonly violations: number;
}

const PSP_TIMEOUT_MS = 1_000;

/** Clean-ups undone in reverse order at the end; one added after the end (an interrupted run's start-up finishing) runs at once. */
class Cleanups {
  readonly #steps: (() => Promise<void>)[] = [];
  #done = false;

  add(cleanup: () => Promise<void>): void {
    if (this.#done) void cleanup().catch(() => undefined);
    else this.#steps.push(cleanup);
  }

  async run(): Promise<void> {
    this.#done = true;
    for (const cleanup of this.#steps.reverse()) await cleanup().catch(() => undefined);
  }
}

/** What the run has reached, reported to `onProgress` about every second. */
class ProgressTracker {
  phase: ChaosProgress['phase'] = 'starting';
  placed = 0;
  readonly terminal = new Set<string>();
  faultsDone = 0;
  faultsTotal = 0;
  currentFault: string | undefined;

  constructor(
    private readonly total: number,
    private readonly onProgress: ChaosOptions['onProgress'],
  ) {}

  report(): void {
    this.onProgress?.({
      phase: this.phase,
      placed: this.placed,
      total: this.total,
      terminal: this.terminal.size,
      faultsDone: this.faultsDone,
      faultsTotal: this.faultsTotal,
      currentFault: this.currentFault,
    });
  }
}

/** The system under test and what the harness needs to reach into it. */
interface ChaosEnvironment {
  readonly database: ChaosDatabase;
  readonly pgProxy: PgProxy;
  readonly cluster: NatsCluster | undefined;
  /** RabbitMQ mode: the node the run restarts. */
  readonly rabbitNode: RabbitNode | undefined;
  readonly system: RunningSystem;
  /** The harness's side of the bus, as the `chaos` identity. */
  readonly bus: ChaosBus;
  readonly topology: OrderingTopology;
  readonly readyTimeoutMs: number;
}

/**
 * Starts what the run breaks: a fresh PostgreSQL database behind a cuttable link, the broker (the
 * system's private nats-server, a 3-node cluster on the bus's own config, or a fresh vhost on the
 * RabbitMQ node) and every service; then connects the harness to the bus as `chaos`.
 */
async function startEnvironment(
  options: ChaosOptions,
  mode: BrokerMode,
  cleanups: Cleanups,
  errorLogs: Record<string, number>,
): Promise<ChaosEnvironment> {
  const note = options.onNote ?? (() => undefined);
  const database = await createDatabase(
    options.databaseUrl,
    `chaos_${options.seed}_${randomBytes(4).toString('hex')}`,
  );
  cleanups.add(() => database.drop());
  const pgProxy = await PgProxy.start(database.target);
  cleanups.add(() => pgProxy.close());
  const serviceDbUrl = new URL(database.url);
  serviceDbUrl.hostname = '127.0.0.1';
  serviceDbUrl.port = String(pgProxy.port);

  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-chaos-'));
  cleanups.add(() => rm(dataDir, { recursive: true, force: true }));
  const topology = orderingTopology();
  const clusterViolations: string[] = [];
  let cluster: NatsCluster | undefined;
  if (mode.broker === 'nats' && mode.nats === 'cluster') {
    // The cluster runs the bus's own config on every node: the same identities and TLS as `up`'s
    // private server, routes authenticated with a generated secret.
    const secrets = await prepareBusSecrets(join(dataDir, 'secrets'), topology, { chaos: true });
    const routeSecret = randomBytes(18).toString('base64url');
    const started = await startNatsCluster(3, {
      config: (node) =>
        busServerConfig(secrets, topology, {
          serverName: node.name,
          port: node.port,
          storeDir: node.storeDir,
          chaos: true,
          cluster: {
            name: node.clusterName,
            host: '127.0.0.1',
            port: node.routePort,
            routes: node.routes,
            user: 'route',
            password: routeSecret,
          },
        }),
      onLog: (line, node) => {
        if (PERMISSION_VIOLATION.test(line)) clusterViolations.push(`${node}: ${line}`);
      },
    });
    cleanups.add(() => started.dispose());
    cluster = started;
    note(`3-node JetStream cluster: ${cluster.servers.join(', ')}`);
  }
  let rabbit: { vhost: RabbitVhost; node: RabbitNode; refusals: RabbitRefusalLog } | undefined;
  if (mode.broker === 'rabbitmq') {
    const vhost = await createRabbitVhost();
    cleanups.add(() => vhost.dispose());
    const node = new RabbitNode({ vhost: vhost.name });
    // Before the vhost goes: an interrupted broker restart must not leave the node stopped.
    cleanups.add(() => node.ensureRunning());
    rabbit = { vhost, node, refusals: await RabbitRefusalLog.open(await node.logFile()) };
  }
  const [natsPort, gatewayPort, pspPort, smtpPort, mailboxPort] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );
  const readyTimeoutMs = 120_000;
  const system = await createSystem({
    dataDir,
    ...(rabbit
      ? {
          broker: 'rabbitmq',
          amqpUrl: options.amqpUrl ?? RABBIT_DEFAULTS.amqpUrl,
          rabbitVhost: rabbit.vhost.name,
        }
      : cluster
        ? { natsUrl: cluster.servers.join(','), streamReplicas: 3, secretsDir: join(dataDir, 'secrets') }
        : { natsPort: natsPort! }),
    chaosIdentity: true,
    ...(options.runtime && { runtime: options.runtime }),
    databaseUrl: serviceDbUrl.toString(),
    gatewayPort: gatewayPort!,
    pspPort: pspPort!,
    smtpPort: smtpPort!,
    mailboxPort: mailboxPort!,
    replicas: { 'payment-processor': options.paymentReplicas ?? 3 },
    env: {
      'payment-processor': { PSP_TIMEOUT_MS: String(PSP_TIMEOUT_MS) },
      // The mailbox is the record of every mail: it must not drop the oldest (default: newest 10 000).
      'smtp-sink': { MAX_MESSAGES: String(Math.max(10_000, options.orders * 8)) },
    },
    baseEnv: { ...options.baseEnv, LOG_LEVEL: options.logLevel ?? 'warn' },
    restart: { initialDelayMs: 250, maxDelayMs: 5_000, stableAfterMs: 10_000 },
    stopDeadlineMs: 15_000,
    readyTimeoutMs,
    ownProcessGroup: false,
    onLog: (line) => {
      if (/"level":(50|60)/.test(line.line)) errorLogs[line.program] = (errorLogs[line.program] ?? 0) + 1;
      options.onLog?.(line);
    },
    onEvent: (event: SupervisorEvent) => {
      if (event.type === 'restarting')
        note(`supervisor: ${event.program}#${event.replica} restarts in ${event.delayMs} ms`);
    },
  });
  const users = system.rabbit;
  if (users)
    cleanups.add(async () => {
      // One rabbitmqctl per user, side by side: each call costs a second or more.
      await Promise.all(
        users.identities.map((identity) => removeRabbitUsers([identity], { userPrefix: users.userPrefix })),
      );
    });
  cleanups.add(() => system.stop());
  await system.supervisor.start();
  note(
    `system up: API ${system.apiUrl}, ${
      users ? `RabbitMQ ${users.url} vhost ${users.vhost}` : `NATS ${system.natsUrl}`
    }, PostgreSQL database ${database.name}`,
  );
  if (rabbit && users) {
    const { refusals } = rabbit;
    const scope = { vhost: users.vhost, userPrefix: users.userPrefix };
    const bus = await rabbitChaosBus(system.amqpUrl('chaos'), topology, async () => [
      ...(await refusals.read(scope)).map((line) => `RabbitMQ: ${line}`),
      ...system.permissionViolations(),
    ]);
    cleanups.add(() => bus.close());
    return { database, pgProxy, cluster, rabbitNode: rabbit.node, system, bus, topology, readyTimeoutMs };
  }
  const nc = await system.connect('orderflow-chaos', 'chaos');
  const bus = await natsChaosBus(nc, topology, () =>
    cluster ? clusterViolations : system.permissionViolations(),
  ).catch(async (error: unknown) => {
    await nc.close();
    throw error;
  });
  cleanups.add(() => bus.close());
  return { database, pgProxy, cluster, rabbitNode: undefined, system, bus, topology, readyTimeoutMs };
}

/** Places the orders at the planned rate while the fault plan runs beside them, one probe order after each fault. */
async function loadUnderFaults(
  options: ChaosOptions,
  env: ChaosEnvironment,
  harness: { api: GatewayClient; load: LoadDriver; random: SeededRandom },
  progress: ProgressTracker,
  faults: readonly FaultClass[],
): Promise<{ records: FaultRecord[]; poison: PoisonMessage[]; loadDurationMs: number }> {
  const { system, cluster, rabbitNode, pgProxy, bus, readyTimeoutMs } = env;
  const { api, load, random } = harness;
  const note = options.onNote ?? (() => undefined);
  const steps = planFaults(faults, SERVICES, random, options.killsPerService ?? 2);
  progress.faultsTotal = steps.length;
  const poison: PoisonMessage[] = [];
  const records: FaultRecord[] = [];
  const ratePerSecond = options.ratePerSecond ?? 10;
  const expectedLoadMs = (options.orders / ratePerSecond) * 1_000;
  progress.phase = 'load';
  const loadStartedAt = Date.now();
  const since = () => Date.now() - loadStartedAt;

  const loadDone = load.run({
    count: options.orders,
    ratePerSecond,
    onPlaced: () => (progress.placed += 1),
  });
  const faultsDone = (async () => {
    const spacing = expectedLoadMs / (steps.length + 1);
    for (const [index, step] of steps.entries()) {
      const due = loadStartedAt + (index + 1) * spacing;
      if (due > Date.now()) await sleep(due - Date.now());
      progress.currentFault = step.service ? `${step.fault} ${step.service}` : step.fault;
      const start = since();
      const target = await injectFault(step, {
        supervisor: system.supervisor,
        services: SERVICES,
        random,
        ...(cluster && { cluster }),
        ...(rabbitNode && { rabbitNode }),
        pgProxy,
        pgOutageMs: options.pgOutageMs ?? { min: 10_000, max: 20_000 },
        pspUrl: system.pspUrl,
        pspTimeoutMs: PSP_TIMEOUT_MS,
        bus,
        onPoison: (messages) => poison.push(...messages),
        readyTimeoutMs,
        onNote: note,
      });
      const record: FaultRecord = {
        fault: step.fault,
        target,
        startedAtMs: start,
        durationMs: since() - start,
      };
      records.push(record);
      note(`fault ${index + 1}/${steps.length}: ${step.fault} ${target} (${record.durationMs} ms)`);
      // Recovery: an order placed now, timed until it is terminal.
      const liftedAt = Date.now();
      const probe = await load.placeOne('normal', { probe: true });
      if (probe && (await untilTerminal(api, probe.orderId, 180_000)))
        record.recoveryMs = Date.now() - liftedAt;
      progress.faultsDone += 1;
      progress.currentFault = undefined;
    }
  })();
  await Promise.all([loadDone, faultsDone]);
  return { records, poison, loadDurationMs: since() };
}

/** Reads each order's view through the API into `views`, marking the terminal ones. */
async function readViews(
  api: GatewayClient,
  orderIds: readonly string[],
  views: Map<string, OrderView | undefined>,
  progress: ProgressTracker,
): Promise<void> {
  await mapLimit(orderIds, 16, async (orderId) => {
    const response = await api.getOrder(orderId).catch(() => undefined);
    views.set(orderId, response?.status === 200 ? response.body : undefined);
    if (response?.status === 200 && TERMINAL.includes(response.body.status)) progress.terminal.add(orderId);
  });
}

/** Waits until every accepted order is terminal or `deadline` passed (notifications can be missed while NATS restarts: ask). */
async function settle(
  api: GatewayClient,
  load: LoadDriver,
  views: Map<string, OrderView | undefined>,
  progress: ProgressTracker,
  deadline: number,
): Promise<void> {
  const pending = () =>
    load.orders.filter((o) => !TERMINAL.includes(views.get(o.orderId)?.status ?? '')).map((o) => o.orderId);
  for (let waiting = pending(); waiting.length > 0 && Date.now() <= deadline; waiting = pending()) {
    await readViews(api, waiting, views, progress);
    if (pending().length > 0) await sleep(1_000);
  }
}

/** Checks the invariants until they hold or `deadline` passed: invoices, mails and dead letters may trail the terminal state. */
async function checkUntilConsistent(
  options: ChaosOptions,
  env: ChaosEnvironment,
  harness: { api: GatewayClient; load: LoadDriver; poison: readonly PoisonMessage[] },
  views: Map<string, OrderView | undefined>,
  progress: ProgressTracker,
  deadline: number,
): Promise<InvariantReport> {
  const { system, bus, database, topology } = env;
  const { api, load, poison } = harness;
  const note = options.onNote ?? (() => undefined);
  let lastCheckNote = Date.now();
  for (;;) {
    await readViews(
      api,
      load.orders.map((o) => o.orderId),
      views,
      progress,
    );
    const histories = new Map<string, HistoryEvent[] | undefined>();
    await mapLimit(load.orders, 16, async (o) => {
      const response = await api.history(o.orderId).catch(() => undefined);
      histories.set(o.orderId, response?.status === 200 ? response.body : undefined);
    });
    const result = checkInvariants({
      orders: load.orders,
      customers: load.customers,
      views,
      histories,
      ledger: await getJson<{ entries: LedgerEntry[] }>(`${system.pspUrl}/ledger`).then((b) => b.entries),
      mails: await getJson<{ messages: Mail[] }>(`${system.mailboxUrl}/messages`).then((b) => b.messages),
      deadLetters: await bus.deadLetters(topology.stream),
      poison,
      answers: load.answers,
      database: await database.facts(),
      permissionViolations: await bus.permissionViolations(),
    });
    if (result.violations === 0 || Date.now() > deadline) return result;
    if (Date.now() - lastCheckNote > 15_000) {
      lastCheckNote = Date.now();
      const failing = result.invariants.filter((i) => !i.ok).map((i) => `${i.name} (${i.violations})`);
      note(`waiting for the system to settle; still failing: ${failing.join('; ')}`);
    }
    await sleep(2_000);
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const startedAt = Date.now();
  const mode: BrokerMode = { broker: options.broker ?? 'nats', nats: options.nats ?? 'single' };
  const faults = options.faults ?? faultClassesFor(mode);
  const problems = faultProblems(faults, mode);
  if (mode.broker === 'rabbitmq' && options.nats === 'cluster')
    problems.push('a NATS cluster (nats: cluster) needs broker nats');
  if (problems.length > 0) throw new ChaosOptionsError(problems);
  const random = new SeededRandom(options.seed);
  const cleanups = new Cleanups();
  const errorLogs: Record<string, number> = {};
  const progress = new ProgressTracker(options.orders, options.onProgress);
  const ticker = setInterval(() => progress.report(), 1_000);
  cleanups.add(async () => clearInterval(ticker));

  const run = async (): Promise<ChaosReport> => {
    const env = await startEnvironment(options, mode, cleanups, errorLogs);
    // The checks read every customer's orders: an operator's token (the load uses each customer's own).
    const api = new GatewayClient(
      env.system.apiUrl,
      15_000,
      await env.system.operatorToken('operator:chaos'),
    );
    const load = new LoadDriver(api, random);
    /** When each order's terminal notification came, on the load's clock. */
    const terminalAt = new Map<string, number>();
    env.bus.followStatus((change) => {
      if (TERMINAL.includes(change.status) && !progress.terminal.has(change.orderId)) {
        progress.terminal.add(change.orderId);
        terminalAt.set(change.orderId, load.elapsedMs());
      }
    });
    await load.registerCustomers(Math.max(5, Math.min(50, Math.ceil(options.orders / 20))));

    const { records, poison, loadDurationMs } = await loadUnderFaults(
      options,
      env,
      { api, load, random },
      progress,
      faults,
    );

    progress.phase = 'settling';
    const settleStart = Date.now();
    const deadline = settleStart + (options.settleTimeoutMs ?? 300_000);
    const views = new Map<string, OrderView | undefined>();
    await settle(api, load, views, progress, deadline);
    const settleDurationMs = Date.now() - settleStart;

    progress.phase = 'checking';
    const result = await checkUntilConsistent(options, env, { api, load, poison }, views, progress, deadline);

    const latencies = load.orders
      .flatMap((o) => {
        const at = terminalAt.get(o.orderId);
        return at === undefined ? [] : [at - o.acceptedAtMs];
      })
      .sort((a, b) => a - b);
    const faultCounts: Partial<Record<FaultClass, number>> = {};
    for (const r of records) faultCounts[r.fault] = (faultCounts[r.fault] ?? 0) + 1;
    const restarts: Record<string, number> = {};
    for (const r of env.system.supervisor.list())
      restarts[r.program] = (restarts[r.program] ?? 0) + r.restarts;
    return {
      seed: options.seed,
      broker: mode.broker,
      nats: mode.nats,
      ordersRequested: options.orders,
      ordersAccepted: load.orders.length,
      ordersPerSecond: Math.round((load.orders.length / loadDurationMs) * 1_000 * 10) / 10,
      loadDurationMs,
      settleDurationMs,
      totalDurationMs: Date.now() - startedAt,
      faults: records,
      faultCounts,
      answers: load.answers.counts,
      medianOrderLatencyMs: latencies[Math.floor(latencies.length / 2)],
      restarts,
      errorLogs,
      invariants: result.invariants,
      violations: result.violations,
    };
  };
  const running = run();
  try {
    return await (options.signal ? Promise.race([running, interrupted(options.signal)]) : running);
  } finally {
    running.catch(() => undefined); // after an interruption it fails as its parts are taken away
    await cleanups.run();
  }
}

/** Polls GET /orders/:id until terminal; false after `timeoutMs`. */
async function untilTerminal(api: GatewayClient, orderId: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const response = await api.getOrder(orderId).catch(() => undefined);
    if (response?.status === 200 && TERMINAL.includes(response.body.status)) return true;
    await sleep(100);
  }
  return false;
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return (await response.json()) as T;
}
