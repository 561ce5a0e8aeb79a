import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A parsed request as route handlers see it. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly params: Record<string, string>;
  header(name: string): string | undefined;
  /** The JSON body; `undefined` when empty. Throws `BadJsonError` on malformed JSON. */
  json(): Promise<unknown>;
  /** The underlying request, for handlers that need to hold the connection. */
  readonly raw: IncomingMessage;
}

export interface HttpReply {
  status: number;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it is (instead of `body`), e.g. the Prometheus text format. */
  text?: string;
  headers?: Record<string, string>;
}

export type RouteHandler = (request: HttpRequest) => Promise<HttpReply | 'hang'>;

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** `/v1/charges/:id` style pattern. */
  path: string;
  handle: RouteHandler;
}

export class BadJsonError extends Error {
  override name = 'BadJsonError';
}

const MAX_BODY_BYTES = 1_000_000;

function compile(path: string): (p: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const pattern = new RegExp(
    `^${path.replace(/:([A-Za-z]+)/g, (_m, name: string) => {
      names.push(name);
      return '([^/]+)';
    })}$`,
  );
  return (p) => {
    const match = pattern.exec(p);
    if (!match) return undefined;
    return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(match[i + 1] ?? '')]));
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BadJsonError('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, reply: HttpReply): void {
  const body = reply.text ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
  res.writeHead(reply.status, {
    ...(body && { 'content-type': 'application/json' }),
    ...reply.headers,
  });
  res.end(body);
}

/** Told of every answered request: its method, route pattern (`unmatched` for none) and status. */
export type RequestObserver = (method: string, route: string, status: number) => void;

/** A JSON HTTP server over node's `http`: routes, JSON bodies, one error mapping. */
export function jsonServer(
  routes: readonly Route[],
  onError: (error: unknown) => HttpReply,
  observe?: RequestObserver,
): Server {
  const compiled = routes.map((route) => ({ ...route, match: compile(route.path) }));
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let params: Record<string, string> | undefined;
    const route = compiled.find((r) => r.method === req.method && (params = r.match(url.pathname)));
    if (observe) {
      const method = req.method ?? 'GET';
      const pattern = route && params ? route.path : 'unmatched';
      res.once('finish', () => observe(method, pattern, res.statusCode));
    }
    if (!route || !params) {
      const known = compiled.some((r) => r.match(url.pathname));
      send(res, {
        status: known ? 405 : 404,
        body: {
          error: {
            code: known ? 'method_not_allowed' : 'not_found',
            message: `${req.method} ${url.pathname}`,
          },
        },
      });
      return;
    }
    let parsed: unknown;
    let bodyRead = false;
    const request: HttpRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      params,
      header: (name) => {
        const value = req.headers[name.toLowerCase()];
        return Array.isArray(value) ? value[0] : value;
      },
      json: async () => {
        if (!bodyRead) {
          bodyRead = true;
          const text = await readBody(req);
          try {
            parsed = text.trim() === '' ? undefined : (JSON.parse(text) as unknown);
          } catch {
            throw new BadJsonError('body is not valid JSON');
          }
        }
        return parsed;
      },
      raw: req,
    };
    route.handle(request).then(
      (reply) => {
        if (reply === 'hang') return;
        send(res, reply);
      },
      (error: unknown) => send(res, onError(error)),
    );
  });
}

/** Listens on `port` (0 = a free one) at `host`; resolves with the port. */
export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Stops accepting, drops open connections (held `tok_timeout` requests included), resolves when closed. */
export async function shutdown(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
