import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';

/** Serves `app` on `port` (0 = a free one); resolves once listening. */
export async function listen(
  app: Hono,
  options: { port: number; host?: string },
): Promise<{ port: number; close(graceMs?: number): Promise<void> }> {
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: options.port, hostname: options.host ?? '127.0.0.1' }, () =>
      resolve(s),
    ) as Server;
  });
  return {
    port: (server.address() as AddressInfo).port,
    /**
     * Stops accepting connections, lets requests in flight finish (idle keep-alive connections are
     * closed at once), and cuts what is still open after `graceMs` (default 5000).
     */
    close: (graceMs = 5_000) =>
      new Promise<void>((resolve) => {
        const cut = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
