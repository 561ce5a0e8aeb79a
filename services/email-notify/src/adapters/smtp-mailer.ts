import { connect, type Socket } from 'node:net';
import { createTransport, type Transporter } from 'nodemailer';
import type { Mail } from '../domain/mails.ts';
import { EmailErrorCode, EmailNotifyError, SmtpRejectedError } from '../errors.ts';

export interface Attachment {
  filename: string;
  contentType: string;
  content: Uint8Array;
}

/** Sends mail. Resolves once the server accepted it (`250`). */
export interface Mailer {
  send(mail: Mail, attachments?: readonly Attachment[]): Promise<void>;
  close(): void;
}

export interface SmtpOptions {
  host: string;
  port: number;
  /** Implicit TLS (port 465). Default false. */
  secure: boolean;
  user: string | undefined;
  password: string | undefined;
  from: string;
  /** Connection, greeting and socket timeouts (default 10 000 ms). */
  timeoutMs: number;
}

/**
 * Opens the pool's connections itself (nodemailer's `getSocket` hook: a `connection` handed back is
 * used as is, and TLS is started on it for `secure`) to turn Nagle's algorithm off. nodemailer leaves
 * it on and writes a mail's closing `.` in a segment of its own, which the kernel then holds until the
 * server acknowledged the body — an acknowledgement the server delays: ≈ 46 ms per mail on loopback,
 * ≈ 3 ms without (docs/performance.md, item 20).
 */
function connectWithoutDelay(options: SmtpOptions) {
  return (_options: unknown, callback: (error: Error | null, socket?: { connection: Socket }) => void) => {
    const socket = connect({ host: options.host, port: options.port, noDelay: true });
    const fail = (error: Error) => {
      socket.destroy();
      callback(error);
    };
    socket.setTimeout(options.timeoutMs, () =>
      fail(new Error(`connection to ${options.host}:${options.port} timed out`)),
    );
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', fail);
      // nodemailer listens from its next turn on; an error before that ends in its socket timeout.
      socket.on('error', () => undefined);
      callback(null, { connection: socket });
    });
  };
}

/** {@link Mailer} over SMTP with nodemailer (pooled connections). 5xx refusals are permanent, the rest retryable. */
export class SmtpMailer implements Mailer {
  readonly #transport: Transporter;

  constructor(private readonly options: SmtpOptions) {
    this.#transport = createTransport({
      host: options.host,
      port: options.port,
      secure: options.secure,
      pool: true,
      maxConnections: 4,
      getSocket: connectWithoutDelay(options),
      connectionTimeout: options.timeoutMs,
      greetingTimeout: options.timeoutMs,
      socketTimeout: options.timeoutMs,
      ...(options.user !== undefined && { auth: { user: options.user, pass: options.password ?? '' } }),
    });
  }

  async send(mail: Mail, attachments: readonly Attachment[] = []): Promise<void> {
    try {
      await this.#transport.sendMail({
        from: this.options.from,
        to: mail.to,
        subject: mail.subject,
        text: mail.text,
        messageId: mail.messageId,
        headers: mail.headers,
        attachments: attachments.map((a) => ({
          filename: a.filename,
          contentType: a.contentType,
          content: Buffer.from(a.content),
        })),
      });
    } catch (cause) {
      const code = (cause as { responseCode?: number }).responseCode;
      if (code !== undefined && code >= 500 && code < 600) {
        throw new SmtpRejectedError(`SMTP refused the ${mail.kind} mail to ${mail.to}: ${code}`, { cause });
      }
      throw new EmailNotifyError(
        EmailErrorCode.SmtpUnavailable,
        `SMTP failed for the ${mail.kind} mail: ${String(cause)}`,
        {
          cause,
        },
      );
    }
  }

  close(): void {
    this.#transport.close();
  }
}
