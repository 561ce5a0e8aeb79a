import {
  SettledRows,
  type Migration,
  type SqlExecutor,
  type SqlStore,
  type SqlTransaction,
} from '@orderflow/sql';
import type { OrderFact, OrderFacts } from '../domain/facts.ts';

export type { OrderFact, OrderFacts } from '../domain/facts.ts';

/** The tables of order-storage besides the read model (which the projection manages itself). */
export const orderStorageMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'customers, idempotency keys, order facts',
    sql: `
      CREATE TABLE customers (
        customer_id text PRIMARY KEY,
        email text NOT NULL,
        name text NOT NULL,
        registered_at timestamptz NOT NULL
      );
      CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
      CREATE TABLE idempotency_keys (
        idempotency_key text PRIMARY KEY,
        request_hash text NOT NULL,
        order_id text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE order_facts (
        order_id text PRIMARY KEY,
        payment_id text,
        declined boolean NOT NULL DEFAULT false,
        refund_id text,
        invoice_number text,
        courier_id text,
        courier_released boolean NOT NULL DEFAULT false,
        delivery_unavailable boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
  {
    version: 2,
    // A key is the customer's own. Keys claimed before have no known customer ('') and match no claim:
    // a retry of such a request after the upgrade places a new order.
    name: 'idempotency keys scoped per customer',
    sql: `
      ALTER TABLE idempotency_keys ADD COLUMN customer_id text NOT NULL DEFAULT '';
      ALTER TABLE idempotency_keys ALTER COLUMN customer_id DROP DEFAULT;
      ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
      ALTER TABLE idempotency_keys ADD PRIMARY KEY (customer_id, idempotency_key);`,
  },
  {
    version: 3,
    name: 'credit note number of an order',
    sql: 'ALTER TABLE order_facts ADD COLUMN credit_note_number text;',
  },
  {
    version: 4,
    name: 'payment tokens (kept here, not on the stream)',
    sql: `
      CREATE TABLE payment_tokens (
        order_id text PRIMARY KEY,
        -- NULL once the payment outcome is recorded: nothing is left to charge with it
        token text,
        created_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
  {
    version: 5,
    // Read only when the event log is SQL (no stream keeps the other services' events for a history).
    name: 'order history: the events other services reported about an order',
    sql: `
      CREATE TABLE order_history (
        seq bigserial NOT NULL UNIQUE,
        order_id text NOT NULL,
        source text NOT NULL,
        event_id text NOT NULL,
        type text NOT NULL,
        time text NOT NULL,
        data jsonb NOT NULL,
        traceparent text,
        -- the order's version in the event log when this was recorded: it comes after that commit
        after_version bigint NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (order_id, source, event_id)
      );`,
  },
];

/** An idempotency key as the customer who sent it owns it. */
export interface ScopedKey {
  readonly customerId: string;
  readonly key: string;
}

/** An order's payment token: there, gone (the payment outcome is recorded), or never stored. */
export type StoredToken = { readonly kind: 'token'; readonly token: string } | { readonly kind: 'gone' };

export interface Customer {
  readonly customerId: string;
  readonly email: string;
  readonly name: string;
  readonly registeredAt: string;
}

interface FactsRow extends Record<string, unknown> {
  order_id: string;
  payment_id: string | null;
  declined: boolean;
  refund_id: string | null;
  invoice_number: string | null;
  credit_note_number: string | null;
  courier_id: string | null;
  courier_released: boolean;
  delivery_unavailable: boolean;
}

const toFacts = (row: FactsRow): OrderFacts => ({
  orderId: row.order_id,
  paymentId: row.payment_id,
  declined: row.declined,
  refundId: row.refund_id,
  invoiceNumber: row.invoice_number,
  creditNoteNumber: row.credit_note_number,
  courierId: row.courier_id,
  courierReleased: row.courier_released,
  deliveryUnavailable: row.delivery_unavailable,
});

function factColumn(fact: OrderFact): [column: string, value: unknown] {
  switch (fact.kind) {
    case 'payment':
      return ['payment_id', fact.paymentId];
    case 'declined':
      return ['declined', true];
    case 'refund':
      return ['refund_id', fact.refundId];
    case 'invoice':
      return ['invoice_number', fact.invoiceNumber];
    case 'credit-note':
      return ['credit_note_number', fact.creditNoteNumber];
    case 'courier':
      return ['courier_id', fact.courierId];
    case 'courier-released':
      return ['courier_released', true];
    case 'delivery-unavailable':
      return ['delivery_unavailable', true];
    default:
      return fact satisfies never;
  }
}

/** The outcome of claiming an idempotency key: the order it maps to and the request it was first used with. */
export interface KeyClaim {
  readonly orderId: string;
  readonly requestHash: string;
  /** True when this call created the mapping. */
  readonly created: boolean;
}

/** order-storage's own tables in its SQL store. */
export class OrderStorageDb {
  /** Customers this process read: a customer row is never updated or deleted once registered. */
  readonly #customers = new SettledRows<Customer>();

  constructor(readonly store: SqlStore) {}

  /**
   * Inserts a customer in `tx`; `false` when the e-mail is taken (case-insensitive, the unique index on
   * `lower(email)`). A taken e-mail is not an error inside the transaction (`ON CONFLICT DO NOTHING`):
   * a caught unique violation would have aborted it, and its commit failed (25P02).
   */
  async insertCustomer(tx: SqlTransaction, customer: Customer): Promise<boolean> {
    const { rows } = await tx.query<{ customer_id: string }>(
      `INSERT INTO customers (customer_id, email, name, registered_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT ((lower(email))) DO NOTHING RETURNING customer_id`,
      [customer.customerId, customer.email, customer.name, customer.registeredAt],
    );
    return rows.length === 1;
  }

  customer(customerId: string): Promise<Customer | undefined> {
    return this.#customers.through(customerId, async () => {
      const { rows } = await this.store.query<{
        customer_id: string;
        email: string;
        name: string;
        registered_at: Date;
      }>('SELECT customer_id, email, name, registered_at FROM customers WHERE customer_id = $1', [
        customerId,
      ]);
      const row = rows[0];
      return row
        ? {
            customerId: row.customer_id,
            email: row.email,
            name: row.name,
            registeredAt: row.registered_at.toISOString(),
          }
        : undefined;
    });
  }

  /**
   * Maps the customer's `key` to `orderId` unless it is mapped already; returns the mapping that holds.
   * The primary key makes concurrent claims of one key agree on one order. Keys of different customers
   * never meet. The claim that creates the mapping keeps the order's payment token in the same
   * statement, so an order id never exists without its token.
   */
  async claimIdempotencyKey(
    scoped: ScopedKey,
    requestHash: string,
    orderId: string,
    paymentToken: string,
  ): Promise<KeyClaim> {
    const { customerId, key } = scoped;
    const inserted = await this.store.query<{ order_id: string }>(
      `WITH claim AS (
         INSERT INTO idempotency_keys (customer_id, idempotency_key, request_hash, order_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING order_id
       ), token AS (
         INSERT INTO payment_tokens (order_id, token) SELECT order_id, $5 FROM claim
       )
       SELECT order_id FROM claim`,
      [customerId, key, requestHash, orderId, paymentToken],
    );
    if (inserted.rows[0]) return { orderId, requestHash, created: true };
    const { rows } = await this.store.query<{ order_id: string; request_hash: string }>(
      'SELECT order_id, request_hash FROM idempotency_keys WHERE customer_id = $1 AND idempotency_key = $2',
      [customerId, key],
    );
    const row = rows[0];
    if (!row) throw new Error(`idempotency key ${key} of ${customerId} vanished`);
    return { orderId: row.order_id, requestHash: row.request_hash, created: false };
  }

  /**
   * Records one fact and returns every fact of the order as they are after it, in one statement: of two
   * concurrent writers the later one sees the earlier one's fact. A payment outcome (charge or decline)
   * also forgets the order's payment token in that statement: nothing is left to charge with it.
   */
  async recordFact(orderId: string, fact: OrderFact, db: SqlExecutor = this.store): Promise<OrderFacts> {
    const [column, value] = factColumn(fact);
    const outcome = fact.kind === 'payment' || fact.kind === 'declined';
    const { rows } = await db.query<FactsRow>(
      `WITH dropped AS (
         UPDATE payment_tokens SET token = NULL WHERE order_id = $1 AND $3::boolean AND token IS NOT NULL
       )
       INSERT INTO order_facts (order_id, ${column}) VALUES ($1, $2)
       ON CONFLICT (order_id) DO UPDATE SET ${column} = EXCLUDED.${column}, updated_at = now()
       RETURNING *`,
      [orderId, value, outcome],
    );
    return toFacts(rows[0] as FactsRow);
  }

  /**
   * The order's facts with its row locked until `tx` ends (an empty row is made for an order without
   * facts, and goes if `tx` rolls back): a replica that reads them to judge a fact before recording it
   * in `tx` waits here for any other replica recording a fact of the same order, and then reads that
   * one too. Two facts of one order judged at the same time, by replicas or by two consumers, are
   * judged one after the other.
   */
  async lockFacts(orderId: string, tx: SqlExecutor): Promise<OrderFacts> {
    const { rows } = await tx.query<FactsRow>(
      `INSERT INTO order_facts (order_id) VALUES ($1)
       ON CONFLICT (order_id) DO UPDATE SET order_id = EXCLUDED.order_id
       RETURNING *`,
      [orderId],
    );
    return toFacts(rows[0] as FactsRow);
  }

  /** Forgets the order's payment token (the order was cancelled before it was charged): nothing may charge it. */
  async forgetToken(orderId: string): Promise<void> {
    await this.store.query(
      'UPDATE payment_tokens SET token = NULL WHERE order_id = $1 AND token IS NOT NULL',
      [orderId],
    );
  }

  async token(orderId: string): Promise<StoredToken | undefined> {
    const { rows } = await this.store.query<{ token: string | null }>(
      'SELECT token FROM payment_tokens WHERE order_id = $1',
      [orderId],
    );
    const row = rows[0];
    if (!row) return undefined;
    return row.token === null ? { kind: 'gone' } : { kind: 'token', token: row.token };
  }

  async facts(orderId: string, db: SqlExecutor = this.store): Promise<OrderFacts | undefined> {
    const { rows } = await db.query<FactsRow>('SELECT * FROM order_facts WHERE order_id = $1', [orderId]);
    return rows[0] && toFacts(rows[0]);
  }
}
