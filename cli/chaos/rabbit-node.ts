import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The RabbitMQ node a chaos run talks to, through `rabbitmqctl` (which needs the node's Erlang
 * cookie: root or the `rabbitmq` user on the broker's machine; `RABBITMQ_NODENAME` picks another node
 * than the default). The run has a vhost of its own on it, but a node is shared by every vhost: its
 * restart ({@link restart}) breaks every client of the node. Only use it on a node you own.
 */

export class RabbitNodeError extends Error {
  override name = 'RabbitNodeError';
  constructor(
    readonly code: 'NODE_SHARED' | 'NO_LOG_FILE' | 'RABBITMQCTL_FAILED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RabbitNodeOptions {
  /** The run's own vhost: its clients are the only ones a restart may meet. */
  readonly vhost: string;
  /** Default `rabbitmqctl` from PATH. */
  readonly rabbitmqctl?: string;
}

/** What one restart took, in milliseconds. */
export interface RabbitRestart {
  /** `rabbitmqctl stop_app`: every connection closed (320 CONNECTION_FORCED), the node's apps stopped. */
  readonly stopMs: number;
  /** The node stopped, by the caller's choice. */
  readonly downMs: number;
  /** `rabbitmqctl start_app` and `await_startup`: the node accepts connections again. */
  readonly startMs: number;
}

export class RabbitNode {
  readonly #ctl: string;
  /** Between a restart's `stop_app` and its `start_app`. */
  #stopped = false;

  constructor(private readonly options: RabbitNodeOptions) {
    this.#ctl = options.rabbitmqctl ?? 'rabbitmqctl';
  }

  async #rabbitmqctl(args: readonly string[]): Promise<string> {
    try {
      return (await run(this.#ctl, [...args], { maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (cause) {
      const stderr = (cause as { stderr?: string }).stderr?.trim();
      throw new RabbitNodeError(
        'RABBITMQCTL_FAILED',
        `${this.#ctl} ${args.join(' ')} failed${stderr ? `: ${stderr}` : ''}`,
        { cause },
      );
    }
  }

  /** The node's log file (the first file of `rabbitmqctl status`'s log files). */
  async logFile(): Promise<string> {
    const status = JSON.parse(await this.#rabbitmqctl(['status', '--formatter', 'json'])) as {
      log_files?: string[];
    };
    const file = (status.log_files ?? []).find((f) => f.startsWith('/') && !f.endsWith('_upgrade.log'));
    if (!file)
      throw new RabbitNodeError(
        'NO_LOG_FILE',
        `the RabbitMQ node logs to no file (${JSON.stringify(status.log_files ?? [])}): its refusals cannot be read`,
      );
    return file;
  }

  /** Open connections per vhost other than the run's own. */
  async otherClients(): Promise<Map<string, number>> {
    const out = await this.#rabbitmqctl(['list_connections', 'vhost', '--quiet', '--no-table-headers']);
    const others = new Map<string, number>();
    for (const vhost of out.split('\n').map((line) => line.trim())) {
      if (vhost === '' || vhost === this.options.vhost) continue;
      others.set(vhost, (others.get(vhost) ?? 0) + 1);
    }
    return others;
  }

  /**
   * Restarts the node's RabbitMQ application: `stop_app` (every client of every vhost is
   * disconnected), `downMs` later `start_app`, then waits until it accepts connections. Durable
   * exchanges, quorum and stream queues and persistent messages survive; transient exchanges and
   * exclusive or auto-delete queues do not. Refused (`NODE_SHARED`) while clients of other vhosts are
   * connected: the restart would break them.
   */
  async restart(downMs: number): Promise<RabbitRestart> {
    const others = await this.otherClients();
    if (others.size > 0)
      throw new RabbitNodeError(
        'NODE_SHARED',
        `not restarting the RabbitMQ node: other vhosts have clients (${[...others]
          .map(([vhost, n]) => `${vhost}: ${n}`)
          .join(', ')}); a restart would break them`,
      );
    const stopping = Date.now();
    this.#stopped = true;
    await this.#rabbitmqctl(['stop_app']);
    const stopped = Date.now();
    await sleep(downMs);
    const starting = Date.now();
    await this.ensureRunning();
    return { stopMs: stopped - stopping, downMs: starting - stopped, startMs: Date.now() - starting };
  }

  /**
   * Starts the application again if {@link restart} stopped it and did not start it yet (a run
   * interrupted while the node was down must not leave it stopped).
   */
  async ensureRunning(): Promise<void> {
    if (!this.#stopped) return;
    await this.#rabbitmqctl(['start_app']);
    await this.#rabbitmqctl(['await_startup', '--timeout', '120']);
    this.#stopped = false;
  }
}

/** A line of the RabbitMQ log about an operation or a login the broker refused. */
const REFUSAL = /access_refused|refused for user|login refused/;

/** What a refusal must name to be one of a run's: its vhost, or (a refused login names none) its users. */
export interface RefusalScope {
  readonly vhost: string;
  /** What the run's user names start with. */
  readonly userPrefix: string;
}

/**
 * The refusals a RabbitMQ node logged since {@link open}: a publish outside the user's topic
 * permissions, a queue it may not touch, a vhost or login it may not use. The broker's own record, so
 * a refusal a client swallowed is counted too. Reads the log file from where it ended at `open` (a
 * rotation during the run is not followed).
 */
export class RabbitRefusalLog {
  readonly #lines: string[] = [];
  #offset: number;
  #partial = '';

  private constructor(
    readonly file: string,
    offset: number,
  ) {
    this.#offset = offset;
  }

  static async open(file: string): Promise<RabbitRefusalLog> {
    const handle = await open(file, 'r');
    try {
      return new RabbitRefusalLog(file, (await handle.stat()).size);
    } finally {
      await handle.close();
    }
  }

  /** The refusals of `scope` logged so far (reads what the log gained since the last call). */
  async read(scope: RefusalScope): Promise<readonly string[]> {
    const handle = await open(this.file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > this.#offset) {
        const buffer = Buffer.alloc(size - this.#offset);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.#offset);
        this.#offset += bytesRead;
        const lines = (this.#partial + buffer.subarray(0, bytesRead).toString('utf8')).split('\n');
        this.#partial = lines.pop() ?? '';
        for (const line of lines) if (REFUSAL.test(line)) this.#lines.push(line);
      }
    } finally {
      await handle.close();
    }
    return this.#lines.filter(
      (line) => line.includes(`vhost '${scope.vhost}'`) || line.includes(`user '${scope.userPrefix}`),
    );
  }
}
