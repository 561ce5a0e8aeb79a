import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect as tcpConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A small process supervisor: runs named programs as child processes, N replicas each, restarts a
 * replica that exits on its own (exponential backoff), and stops everything in reverse tier order.
 * Used by `orderflow up` and by the system tests (start/stop/kill/restart a named program, list pids).
 *
 * Contract:
 * - `start()` starts the tiers in ascending order and waits until every replica of a tier is ready
 *   (its readiness probe passes) before starting the next tier.
 * - A replica that exits while it is meant to run is restarted after `initialDelayMs · 2^(n-1)`
 *   (capped at `maxDelayMs`), where n counts the crashes since it last stayed up `stableAfterMs`.
 * - `stop()` sends SIGTERM to every replica of the highest tier first, waits for them to exit, sends
 *   SIGKILL to those still alive after `stopDeadlineMs`, then goes on with the next tier down.
 * - `kill(name)` delivers a signal (SIGKILL by default) without changing the desired state: the
 *   replica is restarted as if it had crashed.
 */

/** How to tell that a replica is ready to serve. */
export type Readiness =
  /** As soon as the process is spawned. */
  | { readonly kind: 'none' }
  /** A TCP port accepts connections. */
  | { readonly kind: 'tcp'; readonly port: number; readonly host?: string }
  /** An HTTP GET answers 2xx. `url` may contain `{port}`, replaced by the replica's allocated port. */
  | { readonly kind: 'http'; readonly url: string }
  /** A line of its output matches. */
  | { readonly kind: 'log'; readonly match: RegExp };

/** One program the supervisor runs. */
export interface ProgramSpec {
  /** Unique name; log prefix `[name#replica]`. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Environment of every replica (merged over nothing: pass `process.env` entries explicitly). */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Replicas to run (default 1). */
  readonly replicas?: number;
  /** Lower tiers start first and stop last (default 0). */
  readonly tier?: number;
  /**
   * Name of an env var that receives a port allocated for each replica at each spawn (e.g. the
   * `HTTP_PORT` of the health server); the probe of kind `http` can refer to it as `{port}`.
   */
  readonly portEnv?: string;
  readonly readiness?: Readiness;
  /** Restart the replica when it exits on its own (default true). */
  readonly restart?: boolean;
}

export interface RestartPolicy {
  /** Delay before the first restart (default 250 ms). */
  initialDelayMs: number;
  /** Cap of the exponential backoff (default 30 000 ms). */
  maxDelayMs: number;
  /** A replica that ran this long resets its backoff (default 10 000 ms). */
  stableAfterMs: number;
}

export interface SupervisorOptions {
  readonly programs: readonly ProgramSpec[];
  /** Receives every output line of every replica. */
  readonly onLog?: (line: LogLine) => void;
  /** Receives lifecycle events (spawned, ready, exited, restarting…). */
  readonly onEvent?: (event: SupervisorEvent) => void;
  readonly restart?: Partial<RestartPolicy>;
  /** Time a replica gets after SIGTERM before SIGKILL (default 15 000 ms). */
  readonly stopDeadlineMs?: number;
  /** Time a replica gets to become ready (default 60 000 ms). */
  readonly readyTimeoutMs?: number;
  /**
   * Run each child in its own process group (default true), so a terminal's Ctrl-C reaches only the
   * supervisor, which then stops the children in order. Tests pass false: if the test runner is
   * interrupted, the children get the signal too and nothing is left behind.
   */
  readonly ownProcessGroup?: boolean;
  /** Allocates a port for `portEnv` (default: the OS picks a free one). */
  readonly allocatePort?: () => Promise<number>;
  /**
   * Ports a `portEnv` port is never given (the fixed ports of the programs, which may not be bound
   * yet when another replica's port is allocated: a free port now is not a free port later).
   */
  readonly reservedPorts?: readonly number[];
  /** Runs before `start()` starts a tier (after the tiers below are ready); a rejection fails the start. */
  readonly beforeTier?: (tier: number) => Promise<void>;
}

export interface LogLine {
  readonly program: string;
  readonly replica: number;
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
}

export type SupervisorEvent =
  | { readonly type: 'spawned'; readonly program: string; readonly replica: number; readonly pid: number }
  | { readonly type: 'ready'; readonly program: string; readonly replica: number; readonly pid: number }
  | {
      readonly type: 'exited';
      readonly program: string;
      readonly replica: number;
      readonly pid: number;
      readonly code: number | null;
      readonly signal: NodeJS.Signals | null;
      /** True when the exit was asked for (stop), false for a crash or an external kill. */
      readonly expected: boolean;
    }
  | {
      readonly type: 'restarting';
      readonly program: string;
      readonly replica: number;
      readonly delayMs: number;
      readonly attempt: number;
    };

/** A replica as `list()` reports it. */
export interface ReplicaInfo {
  readonly program: string;
  readonly replica: number;
  readonly pid: number | undefined;
  readonly state: ReplicaState;
  /** Restarts after crashes since `start()`. */
  readonly restarts: number;
  /** The port given through `portEnv`, if any. */
  readonly port: number | undefined;
}

export type ReplicaState = 'starting' | 'ready' | 'backoff' | 'stopping' | 'stopped';

export class SupervisorError extends Error {
  override name = 'SupervisorError';
  constructor(
    readonly code: 'UNKNOWN_PROGRAM' | 'NOT_READY' | 'SPAWN_FAILED' | 'INVALID_CONFIG',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const defaultRestart: RestartPolicy = { initialDelayMs: 250, maxDelayMs: 30_000, stableAfterMs: 10_000 };

class Replica {
  child: ChildProcess | undefined;
  state: ReplicaState = 'stopped';
  /** Whether it should be running (restart on exit). */
  wanted = false;
  restarts = 0;
  crashesInARow = 0;
  port: number | undefined;
  startedAt = 0;
  exited: Promise<void> = Promise.resolve();
  ready: Promise<void> = Promise.resolve();
  backoffTimer: NodeJS.Timeout | undefined;
  /** Wakes a pending backoff early when the replica is stopped. */
  abortBackoff: (() => void) | undefined;
  /** Delay of the next restart instead of the backoff (set by `kill(…, { restartDelayMs })`). */
  nextRestartDelayMs: number | undefined;
  constructor(
    readonly spec: ProgramSpec,
    readonly index: number,
  ) {}
}

export class Supervisor {
  readonly #specs = new Map<string, ProgramSpec>();
  readonly #replicas = new Map<string, Replica[]>();
  readonly #restart: RestartPolicy;
  readonly #stopDeadlineMs: number;
  readonly #readyTimeoutMs: number;
  readonly #options: SupervisorOptions;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#restart = { ...defaultRestart, ...options.restart } satisfies RestartPolicy;
    this.#stopDeadlineMs = options.stopDeadlineMs ?? 15_000;
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
    const issues: string[] = [];
    for (const spec of options.programs) {
      if (this.#specs.has(spec.name)) issues.push(`program "${spec.name}" is declared twice`);
      const replicas = spec.replicas ?? 1;
      if (!Number.isInteger(replicas) || replicas < 1)
        issues.push(`${spec.name}: replicas must be a positive integer`);
      this.#specs.set(spec.name, spec);
      this.#replicas.set(
        spec.name,
        Array.from({ length: replicas }, (_, i) => new Replica(spec, i + 1)),
      );
    }
    if (issues.length > 0) throw new SupervisorError('INVALID_CONFIG', issues.join('; '));
  }

  /** Names of the programs, in start order. */
  get programs(): string[] {
    return this.#byTier().map((spec) => spec.name);
  }

  /** Starts every program (or the named ones) tier by tier; resolves when all are ready. */
  async start(names?: readonly string[]): Promise<void> {
    const specs = this.#byTier().filter((spec) => !names || names.includes(spec.name));
    for (const name of names ?? []) this.#replicasOf(name);
    const tiers = [...new Set(specs.map((spec) => spec.tier ?? 0))];
    for (const tier of tiers) {
      const inTier = specs.filter((spec) => (spec.tier ?? 0) === tier);
      await this.#options.beforeTier?.(tier);
      await Promise.all(inTier.map((spec) => this.#startProgram(spec.name)));
    }
  }

  /** Stops every program (or the named ones), highest tier first; no restarts afterwards. */
  async stop(names?: readonly string[]): Promise<void> {
    const specs = this.#byTier()
      .reverse()
      .filter((spec) => !names || names.includes(spec.name));
    for (const name of names ?? []) this.#replicasOf(name);
    const tiers = [...new Set(specs.map((spec) => spec.tier ?? 0))];
    for (const tier of tiers) {
      const inTier = specs.filter((spec) => (spec.tier ?? 0) === tier);
      await Promise.all(inTier.map((spec) => this.#stopProgram(spec.name)));
    }
  }

  /** Stops then starts a program's replicas (one by one, so a replicated program keeps serving). */
  async restart(name: string): Promise<void> {
    for (const replica of this.#replicasOf(name)) {
      await this.#stopReplica(replica);
      this.#spawn(replica);
      await this.#waitReplica(replica, Date.now() + this.#readyTimeoutMs);
    }
  }

  /**
   * Sends `signal` (default SIGKILL) to one replica (default: every replica) without changing what
   * should run: the supervisor restarts it like any crash, after `restartDelayMs` when given (instead
   * of the backoff). Resolves when the process has exited.
   */
  async kill(
    name: string,
    options: { replica?: number; signal?: NodeJS.Signals; restartDelayMs?: number } = {},
  ): Promise<void> {
    const targets = this.#replicasOf(name).filter(
      (r) => options.replica === undefined || r.index === options.replica,
    );
    await Promise.all(
      targets.map(async (replica) => {
        const child = replica.child;
        if (!child) return;
        const exited = replica.exited;
        replica.nextRestartDelayMs = options.restartDelayMs;
        child.kill(options.signal ?? 'SIGKILL');
        await exited;
      }),
    );
  }

  /** Resolves when every replica of the program is ready (e.g. after a kill and its restart). */
  async waitReady(name: string, options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? this.#readyTimeoutMs);
    for (const replica of this.#replicasOf(name)) await this.#waitReplica(replica, deadline);
  }

  async #waitReplica(replica: Replica, deadline: number): Promise<void> {
    const who = `${replica.spec.name}#${replica.index}`;
    while (replica.state !== 'ready') {
      if (!replica.wanted) throw new SupervisorError('NOT_READY', `${who} is stopped`);
      if (Date.now() > deadline)
        throw new SupervisorError('NOT_READY', `${who} is not ready (${replica.state})`);
      await sleep(25);
    }
  }

  /** Pids of the running replicas, per program (a replica waiting to be restarted has none). */
  pids(): Record<string, number[]> {
    const result: Record<string, number[]> = {};
    for (const [name, replicas] of this.#replicas) result[name] = replicas.flatMap((r) => pidOf(r) ?? []);
    return result;
  }

  /** Every replica, in start order. */
  list(): ReplicaInfo[] {
    return this.#byTier().flatMap((spec) =>
      this.#replicasOf(spec.name).map((r) => ({
        program: spec.name,
        replica: r.index,
        pid: pidOf(r),
        state: r.state,
        restarts: r.restarts,
        port: r.port,
      })),
    );
  }

  #byTier(): ProgramSpec[] {
    return [...this.#specs.values()].sort((a, b) => (a.tier ?? 0) - (b.tier ?? 0));
  }

  #replicasOf(name: string): Replica[] {
    const replicas = this.#replicas.get(name);
    if (!replicas) throw new SupervisorError('UNKNOWN_PROGRAM', `no program named "${name}"`);
    return replicas;
  }

  async #startProgram(name: string): Promise<void> {
    const replicas = this.#replicasOf(name);
    for (const replica of replicas) if (!replica.wanted) this.#spawn(replica);
    // Not `replica.ready`: a replica that crashes while starting is restarted and may still make it.
    await this.waitReady(name);
  }

  async #stopProgram(name: string): Promise<void> {
    await Promise.all(this.#replicasOf(name).map((r) => this.#stopReplica(r)));
  }

  async #stopReplica(replica: Replica): Promise<void> {
    replica.wanted = false;
    replica.abortBackoff?.();
    const child = replica.child;
    if (!child || replica.state === 'stopped') {
      replica.state = 'stopped';
      return;
    }
    replica.state = 'stopping';
    const exited = replica.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), this.#stopDeadlineMs);
    await exited;
    clearTimeout(timer);
  }

  /** Spawns a replica now (its port first); `replica.ready` settles when it is ready or gave up. */
  #spawn(replica: Replica): void {
    replica.wanted = true;
    replica.state = 'starting';
    let markReady!: () => void;
    let failReady!: (error: Error) => void;
    replica.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    // Nobody may be awaiting a restart's readiness; keep an unobserved rejection from crashing.
    replica.ready.catch(() => undefined);
    void this.#launch(replica, markReady, failReady);
  }

  /**
   * Gives the replica a free port that is neither reserved nor another replica's (that replica may
   * not have bound it yet, or may be restarting onto it).
   */
  async #allocatePort(replica: Replica): Promise<void> {
    const taken = (port: number): boolean =>
      (this.#options.reservedPorts ?? []).includes(port) ||
      [...this.#replicas.values()].some((replicas) =>
        replicas.some((other) => other !== replica && other.port === port),
      );
    for (let attempt = 1; ; attempt++) {
      const port = await (this.#options.allocatePort ?? allocateFreePort)();
      // An allocator that only has taken ones to give (a fixed port) is taken at its word.
      if (!taken(port) || attempt === 20) {
        replica.port = port; // claimed in the same step as the check: concurrent launches see it
        return;
      }
    }
  }

  async #launch(replica: Replica, markReady: () => void, failReady: (error: Error) => void): Promise<void> {
    const { spec } = replica;
    const env: Record<string, string> = { ...spec.env };
    if (spec.portEnv) {
      await this.#allocatePort(replica);
      env[spec.portEnv] = String(replica.port);
    }
    if (!replica.wanted) {
      failReady(new SupervisorError('NOT_READY', `${spec.name}#${replica.index} was stopped while starting`));
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(spec.command, [...spec.args], {
        env,
        ...(spec.cwd !== undefined && { cwd: spec.cwd }),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: this.#options.ownProcessGroup ?? true,
      });
    } catch (error) {
      failReady(new SupervisorError('SPAWN_FAILED', `${spec.name} could not be spawned`, { cause: error }));
      return;
    }
    replica.child = child;
    replica.startedAt = Date.now();
    let logMatched: (() => void) | undefined;
    const forward = (stream: 'stdout' | 'stderr') => (line: string) => {
      this.#options.onLog?.({ program: spec.name, replica: replica.index, stream, line });
      if (spec.readiness?.kind === 'log' && spec.readiness.match.test(line)) logMatched?.();
    };
    createInterface({ input: child.stdout! }).on('line', forward('stdout'));
    createInterface({ input: child.stderr! }).on('line', forward('stderr'));
    let spawnError: Error | undefined;
    child.once('error', (error) => (spawnError = error));
    replica.exited = new Promise<void>((resolve) => {
      child.once('close', (code, signal) => {
        this.#onExit(replica, child, code, signal, spawnError);
        resolve();
      });
    });
    const pid = child.pid;
    if (pid === undefined) {
      await replica.exited;
      failReady(
        new SupervisorError('SPAWN_FAILED', `${spec.name}: ${spawnError?.message ?? 'spawn failed'}`),
      );
      return;
    }
    this.#options.onEvent?.({ type: 'spawned', program: spec.name, replica: replica.index, pid });

    const gone = replica.exited.then(() => false);
    const probing = new AbortController();
    const probe = this.#probe(replica, probing.signal, (resolve) => (logMatched = resolve));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>(
      (resolve) => (timer = setTimeout(() => resolve(false), this.#readyTimeoutMs)),
    );
    const ready = await Promise.race([probe, gone, timeout]);
    clearTimeout(timer);
    probing.abort();
    if (ready && replica.child === child && replica.state === 'starting') {
      replica.state = 'ready';
      this.#options.onEvent?.({ type: 'ready', program: spec.name, replica: replica.index, pid });
      markReady();
    } else {
      failReady(new SupervisorError('NOT_READY', `${spec.name}#${replica.index} did not become ready`));
    }
  }

  async #probe(
    replica: Replica,
    cancelled: AbortSignal,
    onLogMatch: (resolve: () => void) => void,
  ): Promise<boolean> {
    const readiness = replica.spec.readiness ?? { kind: 'none' };
    const child = replica.child;
    const alive = (): boolean => !cancelled.aborted && child?.exitCode === null && child.signalCode === null;
    switch (readiness.kind) {
      case 'none':
        return true;
      case 'log':
        return new Promise<boolean>((resolve) => onLogMatch(() => resolve(true)));
      case 'tcp':
        while (alive()) {
          if (await tcpOpen(readiness.port, readiness.host ?? '127.0.0.1')) return true;
          await sleep(50);
        }
        return false;
      case 'http': {
        const url = readiness.url.replace('{port}', String(replica.port));
        while (alive()) {
          try {
            const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
            await response.body?.cancel();
            if (response.ok) return true;
          } catch {
            // not listening yet
          }
          await sleep(100);
        }
        return false;
      }
      default:
        return readiness satisfies never;
    }
  }

  #onExit(
    replica: Replica,
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
    error: Error | undefined,
  ): void {
    if (replica.child !== child) return;
    const expected = !replica.wanted;
    this.#options.onEvent?.({
      type: 'exited',
      program: replica.spec.name,
      replica: replica.index,
      pid: child.pid ?? -1,
      code,
      signal,
      expected,
    });
    if (error) {
      this.#options.onLog?.({
        program: replica.spec.name,
        replica: replica.index,
        stream: 'stderr',
        line: `spawn failed: ${error.message}`,
      });
    }
    if (expected || replica.spec.restart === false) {
      replica.state = 'stopped';
      replica.wanted = false;
      return;
    }
    const ranMs = Date.now() - replica.startedAt;
    replica.crashesInARow = ranMs >= this.#restart.stableAfterMs ? 1 : replica.crashesInARow + 1;
    const delayMs =
      replica.nextRestartDelayMs ??
      Math.min(this.#restart.maxDelayMs, this.#restart.initialDelayMs * 2 ** (replica.crashesInARow - 1));
    replica.nextRestartDelayMs = undefined;
    replica.state = 'backoff';
    this.#options.onEvent?.({
      type: 'restarting',
      program: replica.spec.name,
      replica: replica.index,
      delayMs,
      attempt: replica.crashesInARow,
    });
    replica.backoffTimer = setTimeout(() => {
      replica.abortBackoff = undefined;
      if (!replica.wanted) return;
      replica.restarts += 1;
      this.#spawn(replica);
    }, delayMs);
    replica.abortBackoff = () => {
      clearTimeout(replica.backoffTimer);
      replica.abortBackoff = undefined;
      replica.state = 'stopped';
    };
  }
}

function pidOf(replica: Replica): number | undefined {
  const child = replica.child;
  return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
}

function tcpOpen(port: number, host: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = tcpConnect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A TCP port that is free on 127.0.0.1 right now. */
export function allocateFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
