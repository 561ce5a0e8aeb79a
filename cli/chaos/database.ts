import { openPostgres, type SqlStore } from '@orderflow/sql';
import type { DatabaseFacts } from './invariants.ts';

export type ChaosDatabase = Awaited<ReturnType<typeof createDatabase>>;

/** A fresh PostgreSQL database for one run; `facts()` reads the services' tables in it. */
export async function createDatabase(adminUrl: string, name: string) {
  const admin = await openPostgres({ url: adminUrl, schema: 'public', poolSize: 1 });
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let reader: SqlStore | undefined;
  return {
    name,
    url: url.toString(),
    target: { host: url.hostname || '127.0.0.1', port: Number(url.port || 5432) },
    async facts(): Promise<DatabaseFacts> {
      reader ??= await openPostgres({ url: url.toString(), schema: 'public', poolSize: 2 });
      const invoices = await reader.query<{ order_id: string; year: number; sequence: number }>(
        'SELECT order_id, year, sequence FROM create_invoice.invoices',
      );
      const creditNotes = await reader.query<{ order_id: string; year: number; sequence: number }>(
        'SELECT order_id, year, sequence FROM create_invoice.credit_notes',
      );
      const assignments = await reader.query<{ order_id: string; status: string }>(
        'SELECT order_id, status FROM assign_delivery.delivery_assignments',
      );
      const load = await reader.query<{ load: number }>(
        'SELECT COALESCE(SUM(load), 0)::int AS load FROM assign_delivery.couriers',
      );
      const generation = await reader.query<{ generation: number }>(
        "SELECT generation FROM order_storage.eventstore_projections WHERE name = 'order_summaries'",
      );
      const summaries = await reader.query<{
        order_id: string;
        status: string;
        cancellation_reason: string | null;
      }>(
        `SELECT order_id, status, cancellation_reason FROM order_storage.order_summaries_g${generation.rows[0]?.generation ?? 1}`,
      );
      return {
        readModel: summaries.rows.map((r) => ({
          orderId: r.order_id,
          status: r.status,
          cancellationReason: r.cancellation_reason,
        })),
        invoices: invoices.rows.map((r) => ({ orderId: r.order_id, year: r.year, sequence: r.sequence })),
        creditNotes: creditNotes.rows.map((r) => ({
          orderId: r.order_id,
          year: r.year,
          sequence: r.sequence,
        })),
        assignments: assignments.rows.map((r) => ({ orderId: r.order_id, status: r.status })),
        courierLoad: load.rows[0]?.load ?? 0,
      };
    },
    async drop(): Promise<void> {
      await reader?.close();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.close();
    },
  };
}
