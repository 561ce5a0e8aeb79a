import { SettledRows, type Migration, type SqlStore } from '@orderflow/sql';
import { decideSend, type Contact, type MailKind } from '../domain/mails.ts';

export const emailMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'contacts and sent mails',
    sql: `
      CREATE TABLE email_contacts (
        order_id text PRIMARY KEY,
        email text NOT NULL,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE email_mails (
        mail_key text NOT NULL,
        kind text NOT NULL,
        recipient text NOT NULL,
        message_id text NOT NULL,
        event_id text NOT NULL,
        status text NOT NULL CHECK (status IN ('sending', 'sent')),
        claimed_at timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 1,
        sent_at timestamptz,
        PRIMARY KEY (mail_key, kind)
      );`,
  },
];

/**
 * What email-notify remembers, in its SQL store: the contact of each order, and one row per
 * (key, kind) — the decision to send, claimed in a transaction before the SMTP call and marked `sent`
 * after it. The primary key makes a second decision for the same mail impossible.
 */
export class SqlMailLog {
  /**
   * Contacts this process stored or read. A row of `email_contacts` never changes once written (the
   * first insert wins and every `order.placed` of an order carries the same customer), so a
   * remembered one is the stored one: the order's later mails skip the lookup.
   */
  readonly #contacts: SettledRows<Contact>;

  constructor(
    private readonly store: SqlStore,
    private readonly options: { leaseMs: number; now?: () => Date; contactCacheSize?: number },
  ) {
    this.#contacts = new SettledRows(options.contactCacheSize);
  }

  #keep(orderId: string, contact: Contact): void {
    this.#contacts.keep(orderId, { email: contact.email, name: contact.name });
  }

  #now(): Date {
    return this.options.now?.() ?? new Date();
  }

  async rememberContact(orderId: string, contact: Contact): Promise<void> {
    const { rowCount } = await this.store.query(
      'INSERT INTO email_contacts (order_id, email, name) VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING',
      [orderId, contact.email, contact.name],
    );
    if (rowCount === 1) this.#keep(orderId, contact);
  }

  contact(orderId: string): Promise<Contact | undefined> {
    return this.#contacts.through(orderId, async () => {
      const { rows } = await this.store.query<{ email: string; name: string }>(
        'SELECT email, name FROM email_contacts WHERE order_id = $1',
        [orderId],
      );
      return rows[0];
    });
  }

  /**
   * Takes the claim to send (key, kind), or says why not. With `contact`, also remembers that order's
   * contact (as {@link rememberContact}) in the same statement. The row lock serialises replicas.
   *
   * The common case — no row yet — is one autocommitted `INSERT … ON CONFLICT DO NOTHING` (atomic on
   * its own: the key decides who inserts); only when a row exists does a transaction read and update
   * it under `FOR UPDATE`.
   */
  async claim(mail: {
    key: string;
    kind: MailKind;
    to: string;
    messageId: string;
    eventId: string;
    contact?: { orderId: string; email: string; name: string };
  }): Promise<'send' | 'skip' | 'busy'> {
    const now = this.#now();
    const insertMail = `INSERT INTO email_mails (mail_key, kind, recipient, message_id, event_id, status, claimed_at)
         VALUES ($1, $2, $3, $4, $5, 'sending', $6) ON CONFLICT (mail_key, kind) DO NOTHING`;
    const values = [mail.key, mail.kind, mail.to, mail.messageId, mail.eventId, now];
    const { contact } = mail;
    if (contact) {
      const inserted = await this.store.query<{ contacts: number }>(
        `WITH contact AS (
           INSERT INTO email_contacts (order_id, email, name) VALUES ($7, $8, $9)
           ON CONFLICT (order_id) DO NOTHING RETURNING order_id
         ) ${insertMail} RETURNING (SELECT count(*)::int FROM contact) AS contacts`,
        [...values, contact.orderId, contact.email, contact.name],
      );
      // The contact row is this statement's (not an earlier one's): it is what is stored.
      if (inserted.rows[0]?.contacts === 1) this.#keep(contact.orderId, contact);
      if (inserted.rowCount === 1) return 'send';
    } else {
      const inserted = await this.store.query(insertMail, values);
      if (inserted.rowCount === 1) return 'send';
    }
    // A row exists (or a concurrent insert won): decide under its lock, as a fresh claim would.
    return this.store.transaction(async (tx) => {
      const again = await tx.query(insertMail, values);
      if (again.rowCount === 1) return 'send';
      const { rows } = await tx.query<{ status: 'sending' | 'sent'; claimed_at: Date }>(
        'SELECT status, claimed_at FROM email_mails WHERE mail_key = $1 AND kind = $2 FOR UPDATE',
        [mail.key, mail.kind],
      );
      const row = rows[0];
      const decision = decideSend(
        row && { status: row.status, claimedAt: new Date(row.claimed_at) },
        now,
        this.options.leaseMs,
      );
      if (decision === 'send') {
        await tx.query(
          'UPDATE email_mails SET claimed_at = $3, attempts = attempts + 1 WHERE mail_key = $1 AND kind = $2',
          [mail.key, mail.kind, now],
        );
      }
      return decision;
    });
  }

  /** Whether the mail (key, kind) was claimed (being sent, or sent): a decision to send it exists. */
  async claimed(key: string, kind: MailKind): Promise<boolean> {
    return this.claimedAny(key, [kind]);
  }

  /** Whether any of the mails (key, kind) for `kinds` was claimed, in one query. */
  async claimedAny(key: string, kinds: readonly MailKind[]): Promise<boolean> {
    if (kinds.length === 0) return false;
    const { rows } = await this.store.query(
      `SELECT 1 FROM email_mails WHERE mail_key = $1 AND kind IN (${kinds.map((_, i) => `$${i + 2}`).join(', ')}) LIMIT 1`,
      [key, ...kinds],
    );
    return rows.length > 0;
  }

  async markSent(key: string, kind: MailKind): Promise<void> {
    await this.store.query(
      "UPDATE email_mails SET status = 'sent', sent_at = $3 WHERE mail_key = $1 AND kind = $2",
      [key, kind, this.#now()],
    );
  }

  /** Gives the claim up after a failed send, so the retry need not wait for the lease. */
  async release(key: string, kind: MailKind): Promise<void> {
    await this.store.query(
      "UPDATE email_mails SET claimed_at = 'epoch' WHERE mail_key = $1 AND kind = $2 AND status = 'sending'",
      [key, kind],
    );
  }

  async sentCount(key: string, kind: MailKind): Promise<number> {
    const { rows } = await this.store.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM email_mails WHERE mail_key = $1 AND kind = $2 AND status = 'sent'",
      [key, kind],
    );
    return rows[0]?.n ?? 0;
  }
}
