import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy between the services and PostgreSQL that the chaos harness can cut: while cut, every
 * open connection is reset and new ones are refused, which is what a client sees when the database
 * server goes down (the server itself keeps running, so other users of it are not disturbed).
 */
export class PgProxy {
  readonly #sockets = new Set<Socket>();
  #down = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<PgProxy> {
    let proxy: PgProxy | undefined;
    const server = createServer((client) => {
      if (proxy === undefined || proxy.#down) {
        client.resetAndDestroy();
        return;
      }
      const upstream = connect(target.port, target.host);
      for (const socket of [client, upstream]) {
        proxy.#sockets.add(socket);
        socket.on('close', () => proxy!.#sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const address = server.address();
    proxy = new PgProxy(server, typeof address === 'object' && address ? address.port : 0);
    return proxy;
  }

  get isDown(): boolean {
    return this.#down;
  }

  /** Resets every connection and refuses new ones until {@link restore}. */
  cut(): void {
    this.#down = true;
    for (const socket of this.#sockets) socket.resetAndDestroy();
  }

  restore(): void {
    this.#down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
