import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A `nats-server` process started for a test, on free ports, with a temporary JetStream store. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Directory of the JetStream store; it survives {@link NatsServer.restart}. */
  readonly storeDir: string;
  /** Stops the process (SIGTERM, then SIGKILL) and keeps the store, so {@link start} can bring it back. */
  stop(): Promise<void>;
  /** Kills the process with SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Starts the process again on the same port and store. */
  start(): Promise<void>;
  /** `stop()` then `start()`. */
  restart(): Promise<void>;
  /** Stops the process and deletes the store. */
  dispose(): Promise<void>;
}

export interface NatsServerOptions {
  /** Enables JetStream (default true). */
  jetstream?: boolean;
  /** Extra command-line arguments. */
  args?: string[];
  /** Binary to run (default `nats-server` from PATH). */
  binary?: string;
  /**
   * A configuration file's text for this server (given its port and store directory), e.g. from
   * `natsServerConfig`; it replaces the listen, JetStream and cluster flags, so it must set them.
   */
  config?: (node: { port: number; storeDir: string }) => string;
  /** Every line the server logs (e.g. to look for permission violations). */
  onLog?: (line: string) => void;
}

/** Returns a TCP port that is free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
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

async function waitForPort(port: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > until)
      throw new Error(`nats-server did not listen on port ${port} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

class ManagedNatsServer implements NatsServer {
  readonly url: string;
  #child: ChildProcess | undefined;
  #stderr = '';

  constructor(
    readonly port: number,
    readonly storeDir: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly onLog?: (line: string) => void,
  ) {
    this.url = `nats://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let partial = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000);
      if (!this.onLog) return;
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.onLog(line);
    });
    this.#child = child;
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${this.#stderr}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(this.port, 10_000), exited]);
  }

  async #terminate(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  stop(): Promise<void> {
    return this.#terminate('SIGTERM');
  }

  kill(): Promise<void> {
    return this.#terminate('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}

/** Starts a `nats-server` on a free port with a temporary store; call `dispose()` when done. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'orderflow-nats-'));
  let args: string[];
  if (options.config) {
    const file = join(storeDir, 'nats-server.conf');
    await writeFile(file, options.config({ port, storeDir }), { mode: 0o600 });
    args = ['-c', file, ...(options.args ?? [])];
  } else {
    args = ['-a', '127.0.0.1', '-p', String(port), ...(options.args ?? [])];
    if (options.jetstream ?? true) args.push('-js', '-sd', storeDir);
  }
  const server = new ManagedNatsServer(port, storeDir, options.binary ?? 'nats-server', args, options.onLog);
  await server.start();
  return server;
}

/** A JetStream cluster of `nats-server` processes on one machine. */
export interface NatsCluster {
  readonly nodes: readonly NatsServer[];
  /** All client URLs, for a connection that fails over between nodes. */
  readonly servers: string[];
  dispose(): Promise<void>;
}

/** One node of a cluster being started, for {@link NatsClusterOptions.config}. */
export interface ClusterNode {
  readonly index: number;
  readonly name: string;
  readonly clusterName: string;
  readonly port: number;
  readonly routePort: number;
  readonly storeDir: string;
  /** Route URLs of every node (`nats-route://127.0.0.1:<port>`). */
  readonly routes: readonly string[];
}

export interface NatsClusterOptions {
  /** A configuration file's text per node (it must set ports, store, cluster and routes); default: flags, no auth. */
  config?: (node: ClusterNode) => string;
  /** Every line any node logs, with the node's name. */
  onLog?: (line: string, node: string) => void;
}

/** Starts an N-node (default 3) JetStream cluster on free ports, each node with its own temporary store. */
export async function startNatsCluster(size = 3, options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const clusterName = `orderflow-test-${process.pid}-${Date.now()}`;
  const clientPorts = await Promise.all(Array.from({ length: size }, freePort));
  const routePorts = await Promise.all(Array.from({ length: size }, freePort));
  const routeUrls = routePorts.map((p) => `nats-route://127.0.0.1:${p}`);
  const routes = routeUrls.join(',');
  const nodes = await Promise.all(
    clientPorts.map(async (port, index) => {
      const storeDir = await mkdtemp(join(tmpdir(), `orderflow-nats-n${index}-`));
      const onLog = options.onLog && ((line: string) => options.onLog!(line, `n${index}`));
      if (options.config) {
        const file = join(storeDir, 'nats-server.conf');
        const text = options.config({
          index,
          name: `n${index}`,
          clusterName,
          port,
          routePort: routePorts[index]!,
          storeDir,
          routes: routeUrls,
        });
        await writeFile(file, text, { mode: 0o600 });
        const node = new ManagedNatsServer(port, storeDir, 'nats-server', ['-c', file], onLog);
        await node.start();
        return node;
      }
      const args = [
        '-a',
        '127.0.0.1',
        '-p',
        String(port),
        '-js',
        '-sd',
        storeDir,
        '-n',
        `n${index}`,
        '--cluster_name',
        clusterName,
        '--cluster',
        `nats://127.0.0.1:${routePorts[index]}`,
        '--routes',
        routes,
      ];
      const node = new ManagedNatsServer(port, storeDir, 'nats-server', args, onLog);
      await node.start();
      return node;
    }),
  );
  return {
    nodes,
    servers: nodes.map((n) => n.url),
    dispose: async () => {
      await Promise.all(nodes.map((n) => n.dispose()));
    },
  };
}
