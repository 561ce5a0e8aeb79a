import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import type { Mailbox, StoredMessage } from '../domain/mailbox.ts';

/** The route pattern of a path (the metrics' `route` label: bounded, never the raw path). */
function routeOf(parts: readonly string[]): string {
  if (parts.length === 1 && (parts[0] === 'healthz' || parts[0] === 'metrics')) return `/${parts[0]}`;
  if (parts[0] !== 'messages') return 'unmatched';
  if (parts.length === 1) return '/messages';
  if (parts.length === 2) return '/messages/:id';
  if (parts.length === 4 && parts[2] === 'attachments') return '/messages/:id/attachments/:index';
  return 'unmatched';
}

/** The mailbox over HTTP. Messages are listed without attachment contents (sizes and types only). */
export async function startHttp(options: {
  port: number;
  host: string;
  mailbox: Mailbox;
  /** Served on `GET /metrics` (Prometheus); each answered request is counted in it by route. */
  metrics: Registry;
}): Promise<{ port: number; stop(): Promise<void> }> {
  const requests = new Counter({
    name: 'http_server_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'],
    registers: [options.metrics],
  });
  const { mailbox } = options;
  const summary = (m: StoredMessage) => ({
    ...m,
    attachments: m.attachments.map(({ contentBase64: _content, ...rest }) => rest),
  });
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status: number, body?: unknown, contentType = 'application/json') => {
      res.writeHead(status, body === undefined ? {} : { 'content-type': contentType });
      res.end(
        body === undefined
          ? ''
          : typeof body === 'string' || Buffer.isBuffer(body)
            ? body
            : JSON.stringify(body),
      );
    };
    const parts = url.pathname.split('/').filter(Boolean);
    const route = routeOf(parts);
    res.once('finish', () =>
      requests.inc({ method: req.method ?? 'GET', route, status: String(res.statusCode) }),
    );
    if (url.pathname === '/healthz' && req.method === 'GET') return send(200, { status: 'ok' });
    if (url.pathname === '/metrics' && req.method === 'GET') {
      options.metrics.metrics().then(
        (text) => send(200, text, options.metrics.contentType),
        (error: unknown) => send(500, { error: { code: 'internal', message: String(error) } }),
      );
      return;
    }
    if (parts[0] !== 'messages') return send(404, { error: { code: 'not_found', message: url.pathname } });
    if (parts.length === 1 && req.method === 'GET') {
      const to = url.searchParams.get('to') ?? undefined;
      const header = url.searchParams.get('header');
      const [name, ...value] = header ? header.split(':') : [];
      const messages = mailbox.list({
        ...(to !== undefined && { to }),
        ...(name && { header: { name: name.trim(), value: value.join(':').trim() } }),
      });
      return send(200, { messages: messages.map(summary) });
    }
    if (parts.length === 1 && req.method === 'DELETE') return send(200, { deleted: mailbox.clear() });
    const message = parts[1] ? mailbox.get(parts[1]) : undefined;
    if (!message)
      return send(404, { error: { code: 'message_not_found', message: `no message ${parts[1]}` } });
    if (parts.length === 2 && req.method === 'GET') return send(200, message);
    if (parts.length === 4 && parts[2] === 'attachments' && req.method === 'GET') {
      const attachment = message.attachments[Number(parts[3])];
      if (!attachment)
        return send(404, { error: { code: 'attachment_not_found', message: `no attachment ${parts[3]}` } });
      return send(200, Buffer.from(attachment.contentBase64, 'base64'), attachment.contentType);
    }
    return send(405, { error: { code: 'method_not_allowed', message: `${req.method} ${url.pathname}` } });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
