import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { Hono } from 'hono';
import { problem, PROBLEM_CONTENT_TYPE, type Problem } from './domain/problem.ts';

const problemResponse = (p: Problem) =>
  new Response(JSON.stringify(p), { status: p.status, headers: { 'content-type': PROBLEM_CONTENT_TYPE } });

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
  socket.end(
    `HTTP/1.1 ${p.status} ${p.title}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Serves `app` on `port` (0 = a free one); resolves once listening. Every 4xx/5xx is problem+json. */
export async function listen(
  app: Hono,
  options: { port: number; host?: string },
): Promise<{ port: number; close(graceMs?: number): Promise<void> }> {
  const host = options.host ?? '127.0.0.1';
  const handle = getRequestListener(app.fetch, { hostname: host, errorHandler: requestError });
  // The listener settles once the answer is written and handles its own failures.
  const server: Server = createServer((req, res) => void handle(req, res));
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
