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
