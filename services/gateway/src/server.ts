import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { problem, PROBLEM_CONTENT_TYPE, type Problem } from './domain/problem.ts';

/** The headers every answer carries, also those the app never sees (the app adds more of its own). */
export const BASELINE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const problemResponse = (p: Problem) =>
  new Response(JSON.stringify(p), {
    status: p.status,
    headers: { ...BASELINE_SECURITY_HEADERS, 'content-type': PROBLEM_CONTENT_TYPE },
  });

/**
 * A request the app never sees is still answered with a problem: a request target that is not a URL
 * (e.g. a backslash in the path) → 400, anything else that fails before the app answers → 500.
 */
function requestError(error: unknown): Response {
  if (error instanceof Error && error.name === 'RequestError') {
    return problemResponse(problem(400, 'MALFORMED_REQUEST', `the request is malformed: ${error.message}`));
  }
  return problemResponse(problem(500, 'INTERNAL', 'internal error'));
}

/** What Node's HTTP parser rejects (headers too large, bad syntax) → a problem, then the connection closes. */
function clientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const p =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? problem(431, 'HEADERS_TOO_LARGE', 'the request headers are too large')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? problem(408, 'REQUEST_TIMEOUT', 'the request was not received in time')
        : problem(400, 'MALFORMED_REQUEST', 'the request is not valid HTTP');
  const body = JSON.stringify(p);
  const headers = Object.entries(BASELINE_SECURITY_HEADERS)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${p.status} ${p.title}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\n${headers}` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** What `listen` serves: a fetch handler (a Hono app). */
export interface FetchApp {
  fetch: (request: Request, env: unknown) => Response | Promise<Response>;
}

/** Time limits of the HTTP server; a slow or idle client cannot hold a connection forever. */
export interface ServerTimeouts {
  /** Time to receive the request headers (default 10 000 ms; Slowloris). */
  headersTimeoutMs: number;
  /** Time to receive the whole request, body included (default 30 000 ms); answers stream as long as they need. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (default 5000 ms). */
  keepAliveTimeoutMs: number;
  /** A connection on which nothing moves for this long is closed (default 120 000 ms; event streams send heartbeats). */
  idleTimeoutMs: number;
}

export const defaultServerTimeouts: ServerTimeouts = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 120_000,
};

/**
 * Serves `app` on `host` (default 127.0.0.1: reachable from this machine only) and `port` (0 = a free
 * one); resolves once listening. Every 4xx/5xx is problem+json.
 */
export async function listen(
  app: FetchApp,
  options: { port: number; host?: string; timeouts?: Partial<ServerTimeouts> },
): Promise<{ port: number; close(graceMs?: number): Promise<void> }> {
  const host = options.host ?? '127.0.0.1';
  const timeouts = { ...defaultServerTimeouts, ...options.timeouts } satisfies ServerTimeouts;
  const handle = getRequestListener(app.fetch, { hostname: host, errorHandler: requestError });
  // The listener settles once the answer is written and handles its own failures.
  const server: Server = createServer(
    {
      headersTimeout: timeouts.headersTimeoutMs,
      requestTimeout: timeouts.requestTimeoutMs,
      keepAliveTimeout: timeouts.keepAliveTimeoutMs,
      // Node checks the two timeouts above this often (default 30 s would let them overrun).
      connectionsCheckingInterval: Math.min(1_000, timeouts.headersTimeoutMs),
    },
    (req, res) => void handle(req, res),
  );
  server.setTimeout(timeouts.idleTimeoutMs, (socket) => socket.destroy());
  server.on('clientError', clientError);
  await new Promise<void>((resolve) => server.listen(options.port, host, resolve));
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
