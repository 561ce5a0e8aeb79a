// The SQL side of projections: generations of a read model, their checkpoints, and the view swap.
// Internal to the package; the runner and the rebuild share it.
import type { SqlExecutor, SqlStore } from '@orderflow/sql';
import type { EventCodec } from './codec.ts';
import { EventStoreError, EventStoreErrorCode } from './errors.ts';
import type { DomainEvent, Projection, StoredCommit, Tables } from './types.ts';

const IDENTIFIER = /^[a-z][a-z0-9_]{0,40}$/;

const META = [
  `CREATE TABLE IF NOT EXISTS eventstore_projections (
     name text PRIMARY KEY,
     generation integer NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS eventstore_checkpoints (
     projection text NOT NULL,
     generation integer NOT NULL,
     last_sequence bigint NOT NULL,
     PRIMARY KEY (projection, generation))`,
];

const quote = (identifier: string): string => `"${identifier}"`;

/** Checks a projection's names once, before they reach any SQL text. */
export function checkProjection(projection: Projection<never, string>): void {
  const bad = [projection.name, ...projection.tables].filter((name) => !IDENTIFIER.test(name));
  if (bad.length > 0 || projection.tables.length === 0) {
    throw new EventStoreError(
      EventStoreErrorCode.Config,
      `projection ${projection.name}: names must match ${IDENTIFIER.source} and tables must not be empty` +
        (bad.length > 0 ? ` (bad: ${bad.join(', ')})` : ''),
    );
  }
}

/** Physical tables of generation `generation`. */
export function tablesOf<T extends string>(projection: Projection<never, T>, generation: number): Tables<T> {
  return Object.fromEntries(projection.tables.map((t) => [t, `${t}_g${generation}`])) as Tables<T>;
}

/** Serialises work on one projection's metadata across processes (held until the transaction ends). */
async function lock(tx: SqlExecutor, name: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`eventstore.projection.${name}`]);
}

export async function ensureMetaTables(sql: SqlStore): Promise<void> {
  await sql.transaction(async (tx) => {
    await lock(tx, '*');
    for (const statement of META) await tx.query(statement);
  });
}

export interface Position {
  /** Active generation; 0 = none yet. */
  readonly generation: number;
  /** Checkpoint of that generation: stream sequence of the last commit applied. */
  readonly sequence: number;
}

/** The active generation and its checkpoint, locking the projection's row until the transaction ends. */
export async function lockPosition(tx: SqlExecutor, name: string): Promise<Position> {
  await lock(tx, name);
  const { rows } = await tx.query<{ generation: number; last_sequence: unknown }>(
    `SELECT p.generation, c.last_sequence FROM eventstore_projections p
       LEFT JOIN eventstore_checkpoints c ON c.projection = p.name AND c.generation = p.generation
      WHERE p.name = $1 FOR UPDATE OF p`,
    [name],
  );
  const row = rows[0];
  return row
    ? { generation: row.generation, sequence: Number(row.last_sequence ?? 0) }
    : { generation: 0, sequence: 0 };
}

export async function checkpointOf(tx: SqlExecutor, name: string, generation: number): Promise<number> {
  const { rows } = await tx.query<{ last_sequence: unknown }>(
    'SELECT last_sequence FROM eventstore_checkpoints WHERE projection = $1 AND generation = $2',
    [name, generation],
  );
  return Number(rows[0]?.last_sequence ?? 0);
}

/** Creates the tables of a new generation (dropping leftovers of an interrupted rebuild) at checkpoint 0. */
export async function createGeneration(
  tx: SqlExecutor,
  projection: Projection<never, string>,
  generation: number,
): Promise<void> {
  const tables = tablesOf(projection, generation);
  for (const table of Object.values(tables)) await tx.query(`DROP TABLE IF EXISTS ${quote(table)} CASCADE`);
  await projection.setup(tx, tables);
  await tx.query(
    `INSERT INTO eventstore_checkpoints (projection, generation, last_sequence) VALUES ($1, $2, 0)
     ON CONFLICT (projection, generation) DO UPDATE SET last_sequence = 0`,
    [projection.name, generation],
  );
}

/** Every generation that has a checkpoint (the active one and leftovers of interrupted rebuilds). */
export async function generationsOf(tx: SqlExecutor, name: string): Promise<number[]> {
  const { rows } = await tx.query<{ generation: number }>(
    'SELECT generation FROM eventstore_checkpoints WHERE projection = $1 ORDER BY generation',
    [name],
  );
  return rows.map((r) => r.generation);
}

/** The next unused generation number. */
export async function nextGeneration(tx: SqlExecutor, name: string): Promise<number> {
  const { rows } = await tx.query<{ max: number | null }>(
    `SELECT max(g)::integer AS max FROM (
       SELECT generation AS g FROM eventstore_checkpoints WHERE projection = $1
       UNION ALL SELECT generation FROM eventstore_projections WHERE name = $1) AS known`,
    [name],
  );
  return (rows[0]?.max ?? 0) + 1;
}

/** Points the views at `generation` and records it as active (call inside {@link lockPosition}'s transaction). */
export async function activate(
  tx: SqlExecutor,
  projection: Projection<never, string>,
  generation: number,
): Promise<void> {
  const tables = tablesOf(projection, generation);
  for (const [view, table] of Object.entries(tables)) {
    await tx.query(`DROP VIEW IF EXISTS ${quote(view)}`);
    await tx.query(`CREATE VIEW ${quote(view)} AS SELECT * FROM ${quote(table)}`);
  }
  await tx.query(
    `INSERT INTO eventstore_projections (name, generation) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET generation = EXCLUDED.generation`,
    [projection.name, generation],
  );
}

/** Drops a generation that is no longer active. */
export async function dropGeneration(
  tx: SqlExecutor,
  projection: Projection<never, string>,
  generation: number,
): Promise<void> {
  for (const table of Object.values(tablesOf(projection, generation))) {
    await tx.query(`DROP TABLE IF EXISTS ${quote(table)} CASCADE`);
  }
  await tx.query('DELETE FROM eventstore_checkpoints WHERE projection = $1 AND generation = $2', [
    projection.name,
    generation,
  ]);
}

/**
 * Applies the commits after `checkpoint` to `generation` and moves its checkpoint to the last one,
 * in the caller's transaction. Returns the new checkpoint. Decode errors propagate as thrown.
 */
export async function applyCommits<E extends DomainEvent, T extends string>(
  tx: SqlExecutor,
  target: {
    projection: Projection<E, T>;
    codec: EventCodec<E>;
    idOf: (subject: string) => string;
    generation: number;
    checkpoint: number;
  },
  commits: readonly StoredCommit[],
): Promise<number> {
  const { projection, codec, idOf, generation } = target;
  const tables = tablesOf(projection, generation);
  let checkpoint = target.checkpoint;
  for (const commit of commits) {
    if (commit.sequence <= checkpoint) continue; // a redelivery of what this generation already has
    for (const event of codec.decode(commit, idOf(commit.subject))) await projection.apply(tx, event, tables);
    checkpoint = commit.sequence;
  }
  if (checkpoint !== target.checkpoint) {
    await tx.query(
      'UPDATE eventstore_checkpoints SET last_sequence = $3 WHERE projection = $1 AND generation = $2',
      [projection.name, generation, checkpoint],
    );
  }
  return checkpoint;
}

/** Makes sure the projection has an active generation (the first one, empty, at checkpoint 0). */
export async function initialise(sql: SqlStore, projection: Projection<never, string>): Promise<Position> {
  await ensureMetaTables(sql);
  return sql.transaction(async (tx) => {
    const position = await lockPosition(tx, projection.name);
    if (position.generation > 0) return position;
    const generation = await nextGeneration(tx, projection.name);
    await createGeneration(tx, projection, generation);
    await activate(tx, projection, generation);
    return { generation, sequence: 0 };
  });
}
