import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { startHttp } from './adapters/http.ts';
import { startSmtp } from './adapters/smtp.ts';
import { Mailbox } from './domain/mailbox.ts';

/**
 * prom-client's process metrics, less the three `nodejs_active_*_total` gauges: a gauge named
 * `_total` fails `promtool check metrics`, and each is the sum of its per-type `nodejs_active_*`.
 */
function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(name);
}

/**
 * The SMTP sink, for development and tests:
 *
 * | interface | what |
 * |---|---|
 * | SMTP (no TLS, auth optional) | accepts every mail; the `250` is sent after the mail is in the mailbox |
 * | `GET /messages?to=&header=Name:value` | received mails, oldest first (attachments without content) |
 * | `GET /messages/:id` | one mail, attachments in base64 |
 * | `GET /messages/:id/attachments/:index` | one attachment's bytes |
 * | `DELETE /messages` | empties the mailbox |
 * | `GET /healthz` | liveness |
 * | `GET /metrics` | Prometheus: mails received, mailbox size, requests by route and status |
 *
 * The mailbox lives in memory (a sink is disposable); it keeps the newest `maxMessages`.
 */
export interface SmtpSinkOptions {
  smtpPort: number;
  httpPort: number;
  host: string;
  maxMessages: number;
  maxMessageBytes: number;
  logger: Logger;
}

export interface SmtpSink {
  readonly smtpPort: number;
  readonly httpPort: number;
  readonly mailbox: Mailbox;
  stop(): Promise<void>;
}

export async function startSmtpSink(options: SmtpSinkOptions): Promise<SmtpSink> {
  const mailbox = new Mailbox(options.maxMessages);
  const metrics = new Registry();
  metrics.setDefaultLabels({ service: 'smtp-sink' });
  collectProcessMetrics(metrics);
  const received = new Counter({
    name: 'smtp_sink_messages_received_total',
    help: 'Mails accepted over SMTP',
    registers: [metrics],
  });
  new Gauge({
    name: 'smtp_sink_mailbox_messages',
    help: 'Mails held in the mailbox',
    registers: [metrics],
    collect() {
      this.set(mailbox.list({}).length);
    },
  });
  const smtp = await startSmtp({
    port: options.smtpPort,
    host: options.host,
    maxMessageBytes: options.maxMessageBytes,
    logger: options.logger,
    deliver: (message) => {
      mailbox.add(message);
      received.inc();
      options.logger.info({ id: message.id, to: message.to, subject: message.subject }, 'mail received');
    },
  });
  const http = await startHttp({ port: options.httpPort, host: options.host, mailbox, metrics });
  options.logger.info({ smtpPort: smtp.port, httpPort: http.port }, 'smtp sink listening');
  return {
    smtpPort: smtp.port,
    httpPort: http.port,
    mailbox,
    async stop() {
      await Promise.all([smtp.stop(), http.stop()]);
    },
  };
}
