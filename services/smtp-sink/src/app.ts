import type { Logger } from 'pino';
import { startHttp } from './adapters/http.ts';
import { startSmtp } from './adapters/smtp.ts';
import { Mailbox } from './domain/mailbox.ts';

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
  const smtp = await startSmtp({
    port: options.smtpPort,
    host: options.host,
    maxMessageBytes: options.maxMessageBytes,
    logger: options.logger,
    deliver: (message) => {
      mailbox.add(message);
      options.logger.info({ id: message.id, to: message.to, subject: message.subject }, 'mail received');
    },
  });
  const http = await startHttp({ port: options.httpPort, host: options.host, mailbox });
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
