/** A mail as the sink keeps it. */
export interface StoredMessage {
  readonly id: string;
  readonly receivedAt: string;
  /** SMTP envelope: what the client said in MAIL FROM / RCPT TO. */
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  readonly messageId: string | undefined;
  readonly from: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly text: string;
  readonly html: string | undefined;
  /** Header names in lower case, first value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly attachments: readonly StoredAttachment[];
}

export interface StoredAttachment {
  readonly filename: string | undefined;
  readonly contentType: string;
  readonly size: number;
  /** Base64 of the content (kept so tests can check what was attached). */
  readonly contentBase64: string;
}

export interface MessageQuery {
  /** Envelope or header recipient (case-insensitive). */
  to?: string;
  /** Header value of `X-Orderflow-Kind`-style filters: `name: value`. */
  header?: { name: string; value: string };
}

/** The mailbox: received mails in arrival order, bounded (the oldest are dropped first). */
export class Mailbox {
  readonly #messages: StoredMessage[] = [];

  constructor(private readonly maxMessages: number) {}

  add(message: StoredMessage): void {
    this.#messages.push(message);
    if (this.#messages.length > this.maxMessages)
      this.#messages.splice(0, this.#messages.length - this.maxMessages);
  }

  list(query: MessageQuery = {}): StoredMessage[] {
    const to = query.to?.toLowerCase();
    return this.#messages.filter(
      (m) =>
        (to === undefined || [...m.envelope.to, ...m.to].some((address) => address.toLowerCase() === to)) &&
        (query.header === undefined || m.headers[query.header.name.toLowerCase()] === query.header.value),
    );
  }

  get(id: string): StoredMessage | undefined {
    return this.#messages.find((m) => m.id === id);
  }

  /** Empties the mailbox; returns how many were removed. */
  clear(): number {
    return this.#messages.splice(0).length;
  }
}
