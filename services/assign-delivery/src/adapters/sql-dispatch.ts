import { SqlInbox, type Migration, type SqlStore, type SqlTransaction } from '@orderflow/sql';
import {
  candidates,
  decideAssign,
  unavailableReason,
  type Courier,
  type CourierLoad,
} from '../domain/couriers.ts';
import { AssignDeliveryError, DeliveryErrorCode } from '../errors.ts';

export const deliveryMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'couriers, orders and assignments',
    sql: `
      CREATE TABLE couriers (
        courier_id text PRIMARY KEY,
        name text NOT NULL,
        country text NOT NULL,
        capacity integer NOT NULL CHECK (capacity >= 0),
        load integer NOT NULL DEFAULT 0,
        CHECK (load >= 0 AND load <= capacity)
      );
      CREATE INDEX couriers_country ON couriers (country);
      CREATE TABLE delivery_orders (
        order_id text PRIMARY KEY,
        country text,
        cancelled_at timestamptz
      );
      CREATE TABLE delivery_assignments (
        order_id text PRIMARY KEY REFERENCES delivery_orders (order_id),
        status text NOT NULL CHECK (status IN ('assigned', 'unavailable', 'released', 'skipped')),
        courier_id text REFERENCES couriers (courier_id),
        courier_name text,
        reason text,
        decided_at timestamptz NOT NULL,
        released_at timestamptz
      );`,
  },
];

/** What was decided for an order's `payment.authorized`. */
export type Assignment =
  | { kind: 'assigned'; courierId: string; courierName: string; at: string }
  | { kind: 'unavailable'; reason: string; at: string }
  | { kind: 'skipped_cancelled' };

/** What a cancellation did. */
export type Release = { kind: 'released'; courierId: string; at: string } | { kind: 'nothing_to_release' };

interface AssignmentRow extends Record<string, unknown> {
  status: 'assigned' | 'unavailable' | 'released' | 'skipped';
  courier_id: string | null;
  courier_name: string | null;
  reason: string | null;
  decided_at: Date;
  released_at: Date | null;
}

function assignmentOf(row: AssignmentRow): Assignment {
  switch (row.status) {
    case 'assigned':
    case 'released': // released later: what was decided for the authorization was an assignment
      return {
        kind: 'assigned',
        courierId: row.courier_id ?? '',
        courierName: row.courier_name ?? '',
        at: new Date(row.decided_at).toISOString(),
      };
    case 'unavailable':
      return { kind: 'unavailable', reason: row.reason ?? '', at: new Date(row.decided_at).toISOString() };
    case 'skipped':
      return { kind: 'skipped_cancelled' };
    default:
      return row.status satisfies never;
  }
}

/**
 * assign-delivery's SQL store: the courier pool with each courier's load, the orders it knows (shipping
 * country from `order.placed`, cancellation), and one assignment row per order.
 *
 * - One courier per order: the assignment's primary key is the order id, and the order's row is locked
 *   (`FOR UPDATE`) first in every transaction about the order, so its authorization and its
 *   cancellation are serialised; a decided order returns its decision again.
 * - Capacity never exceeded: `UPDATE couriers SET load = load + 1 WHERE courier_id = $1 AND load < capacity`
 *   (re-checked after waiting for a concurrent writer's lock) plus a CHECK constraint.
 * - The load, the assignment row and the inbox record commit in one transaction; a release gives the
 *   capacity back once (status `assigned` → `released` in the same transaction as the decrement).
 */
export class SqlDispatch {
  readonly #inbox: SqlInbox;

  constructor(
    private readonly store: SqlStore,
    private readonly options: { consumer: string; now?: () => Date },
  ) {
    this.#inbox = new SqlInbox(store);
  }

  #now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /** Adds the couriers of `pool` and updates their name, country and capacity (never below their load). */
  static async seed(store: SqlStore, pool: readonly Courier[]): Promise<void> {
    await store.transaction(async (tx) => {
      for (const c of pool) {
        await tx.query(
          `INSERT INTO couriers (courier_id, name, country, capacity) VALUES ($1, $2, $3, $4)
           ON CONFLICT (courier_id) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country,
             capacity = GREATEST(EXCLUDED.capacity, couriers.load)`,
          [c.courierId, c.name, c.country, c.capacity],
        );
      }
    });
  }

  async rememberOrder(orderId: string, country: string): Promise<void> {
    await this.store.query(
      `INSERT INTO delivery_orders (order_id, country) VALUES ($1, $2)
       ON CONFLICT (order_id) DO UPDATE SET country = COALESCE(delivery_orders.country, EXCLUDED.country)`,
      [orderId, country],
    );
  }

  /** Decides the order's courier for the event `eventId`, once per order (see the class comment). */
  async assign(orderId: string, eventId: string): Promise<Assignment> {
    let outcome: Assignment | undefined;
    const applied = await this.#inbox.handleOnce(this.options.consumer, eventId, async (tx) => {
      outcome = await this.#assignIn(tx, orderId);
    });
    if (applied && outcome) return outcome;
    const row = await this.#assignment(this.store, orderId);
    if (!row) throw new AssignDeliveryError(DeliveryErrorCode.OrderUnknown, `no decision for ${orderId}`);
    return assignmentOf(row);
  }

  async #assignment(
    db: Pick<SqlTransaction, 'query'>,
    orderId: string,
    lock = false,
  ): Promise<AssignmentRow | undefined> {
    const { rows } = await db.query<AssignmentRow>(
      `SELECT status, courier_id, courier_name, reason, decided_at, released_at
       FROM delivery_assignments WHERE order_id = $1${lock ? ' FOR UPDATE' : ''}`,
      [orderId],
    );
    return rows[0];
  }

  async #assignIn(tx: SqlTransaction, orderId: string): Promise<Assignment> {
    const { rows } = await tx.query<{ country: string | null; cancelled_at: Date | null }>(
      'SELECT country, cancelled_at FROM delivery_orders WHERE order_id = $1 FOR UPDATE',
      [orderId],
    );
    const order = rows[0];
    const existing = await this.#assignment(tx, orderId);
    const decision = decideAssign({
      known: Boolean(order?.country),
      cancelled: Boolean(order?.cancelled_at),
      decided: existing !== undefined,
    });
    const now = this.#now();
    switch (decision) {
      case 'already_decided':
        return assignmentOf(existing!);
      case 'skip_cancelled':
        await tx.query(
          "INSERT INTO delivery_assignments (order_id, status, decided_at) VALUES ($1, 'skipped', $2)",
          [orderId, now],
        );
        return { kind: 'skipped_cancelled' };
      case 'wait':
        throw new AssignDeliveryError(
          DeliveryErrorCode.OrderUnknown,
          `order ${orderId} is not known yet (order.placed not handled)`,
        );
      case 'assign':
        break;
      default:
        return decision satisfies never;
    }
    const country = order!.country!;
    const pool = await tx.query<CourierLoad>(
      'SELECT courier_id AS "courierId", name, load, capacity FROM couriers WHERE country = $1',
      [country],
    );
    for (const courier of candidates(pool.rows)) {
      const taken = await tx.query(
        'UPDATE couriers SET load = load + 1 WHERE courier_id = $1 AND load < capacity RETURNING courier_id',
        [courier.courierId],
      );
      if (taken.rowCount === 1) {
        await tx.query(
          `INSERT INTO delivery_assignments (order_id, status, courier_id, courier_name, decided_at)
           VALUES ($1, 'assigned', $2, $3, $4)`,
          [orderId, courier.courierId, courier.name, now],
        );
        return {
          kind: 'assigned',
          courierId: courier.courierId,
          courierName: courier.name,
          at: now.toISOString(),
        };
      }
    }
    const reason = unavailableReason(country, pool.rows.length);
    await tx.query(
      `INSERT INTO delivery_assignments (order_id, status, reason, decided_at) VALUES ($1, 'unavailable', $2, $3)`,
      [orderId, reason, now],
    );
    return { kind: 'unavailable', reason, at: now.toISOString() };
  }

  /**
   * The order is cancelled: it gets no courier from now on, and a courier it has is released (once;
   * a second call reports the same release).
   */
  release(orderId: string, at: Date): Promise<Release> {
    return this.store.transaction(async (tx) => {
      // The upsert locks the order's row: serialised with a concurrent assignment of the order.
      await tx.query(
        `INSERT INTO delivery_orders (order_id, cancelled_at) VALUES ($1, $2)
         ON CONFLICT (order_id) DO UPDATE SET cancelled_at = COALESCE(delivery_orders.cancelled_at, EXCLUDED.cancelled_at)`,
        [orderId, at],
      );
      const row = await this.#assignment(tx, orderId, true);
      if (row?.status === 'released') {
        return {
          kind: 'released',
          courierId: row.courier_id ?? '',
          at: new Date(row.released_at ?? at).toISOString(),
        };
      }
      if (row?.status !== 'assigned' || !row.courier_id) return { kind: 'nothing_to_release' };
      const releasedAt = this.#now();
      await tx.query('UPDATE couriers SET load = load - 1 WHERE courier_id = $1', [row.courier_id]);
      await tx.query(
        "UPDATE delivery_assignments SET status = 'released', released_at = $2 WHERE order_id = $1",
        [orderId, releasedAt],
      );
      return { kind: 'released', courierId: row.courier_id, at: releasedAt.toISOString() };
    });
  }

  /** Each courier's load and capacity (for operations and tests). */
  async couriers(): Promise<(CourierLoad & { country: string })[]> {
    const { rows } = await this.store.query<CourierLoad & { country: string }>(
      'SELECT courier_id AS "courierId", name, country, load, capacity FROM couriers ORDER BY courier_id',
    );
    return rows;
  }

  /** Orders assigned (and not released) per courier, as recorded in the assignments. */
  async assignedCount(courierId: string): Promise<number> {
    const { rows } = await this.store.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM delivery_assignments WHERE courier_id = $1 AND status = 'assigned'",
      [courierId],
    );
    return rows[0]?.n ?? 0;
  }

  async statusOf(orderId: string): Promise<AssignmentRow['status'] | undefined> {
    return (await this.#assignment(this.store, orderId))?.status;
  }
}
