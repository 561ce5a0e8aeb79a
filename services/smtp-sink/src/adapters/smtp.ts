import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { simpleParser, type AddressObject } from 'mailparser';
import type { Logger } from 'pino';
import { SMTPServer } from 'smtp-server';
import type { StoredMessage } from '../domain/mailbox.ts';

const addresses = (value: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(value) ? value : value ? [value] : [])
    .flatMap((a) => a.value.map((v) => v.address ?? ''))
    .filter(Boolean);

/**
 * An SMTP server that accepts every mail (no TLS, any or no authentication) and hands each parsed
 * message to `deliver` before answering `250`, so a client that got its `250` can find the mail.
 */
export async function startSmtp(options: {
  port: number;
  host: string;
  maxMessageBytes: number;
  logger: Logger;
  deliver: (message: StoredMessage) => void;
}): Promise<{ port: number; stop(): Promise<void> }> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    size: options.maxMessageBytes,
    logger: false,
    onAuth: (_auth, _session, callback) => callback(null, { user: 'anyone' }),
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (parsed) => {
          const headers: Record<string, string> = {};
          for (const line of parsed.headerLines) {
            const name = line.key.toLowerCase();
            headers[name] ??= line.line.slice(line.line.indexOf(':') + 1).trim();
          }
          const envelopeFrom = session.envelope.mailFrom;
          options.deliver({
            id: randomUUID(),
            receivedAt: new Date().toISOString(),
            envelope: {
              from: envelopeFrom ? envelopeFrom.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
            },
            messageId: parsed.messageId,
            from: addresses(parsed.from)[0] ?? '',
            to: addresses(parsed.to),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : undefined,
            headers,
            attachments: parsed.attachments.map((a) => ({
              filename: a.filename,
              contentType: a.contentType,
              size: a.size,
              contentBase64: a.content.toString('base64'),
            })),
          });
          callback();
        },
        (error: unknown) => {
          options.logger.warn({ err: error }, 'unreadable mail refused');
          callback(error instanceof Error ? error : new Error(String(error)));
        },
      );
    },
  });
  server.on('error', (error) => options.logger.warn({ err: error }, 'smtp connection error'));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
