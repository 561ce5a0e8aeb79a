// Crash windows of the inbox and outbox, with service processes killed by SIGKILL.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats, createEnvelope, envelopeHeaders } from '@orderflow/messaging';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { openSqlStore } from '../src/open.ts';
import { seedPgliteDataDir } from '../src/testing.ts';
import type { SqlStore } from '../src/types.ts';
import { ItemCounted } from './fixtures/contracts.ts';
import { dropSchema, POSTGRES_URL, streamMessages, tempDir } from './support.ts';

const fixture = new URL('./fixtures/crash-process.ts', import.meta.url).pathname;

let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
const children = new Set<ChildProcess>();
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'sql-crash-test' }));
  jsm = await jetstreamManager(nc);
});
after(async () => {
  await killAll();
  await nc.close();
  await server.dispose();
});

/** Where a service keeps its data: a PostgreSQL schema or a PGlite directory, removed by `dispose`. */
interface Database {
  args: [databaseUrl: string, dataDir: string, schema: string];
  /** Opens the store from the test (for PGlite only while no service process has it open). */
  open(): Promise<SqlStore>;
  dispose(): Promise<void>;
}

const databases: Record<string, () => Promise<Database>> = {
  PostgreSQL: async () => {
    const schema = uniqueName('sqlcrash_');
    return {
      args: [POSTGRES_URL, '', schema],
      open: () => openSqlStore({ databaseUrl: POSTGRES_URL, dataDir: '', schema }),
      dispose: () => dropSchema(schema),
    };
  },
  PGlite: async () => {
    const dir = await tempDir('orderflow-sql-crash-');
    // Initialised beforehand (initdb costs seconds of CPU, a minute on a loaded machine): the service
    // processes reopen an existing database, as after their first start.
    await seedPgliteDataDir(dir.path);
    return {
      args: ['', dir.path, ''],
      open: () => openSqlStore({ dataDir: dir.path, schema: '' }),
      dispose: dir.remove,
    };
  },
};

interface Service {
  mode: string;
  child: ChildProcess;
  lines: string[];
  /** What the process wrote to stderr (also echoed to the test's stderr). */
  stderr: string[];
  exited: Promise<number | null>;
}

function startService(database: Database, mode: string, ...args: string[]): Service {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fixture, server.url, ...database.args, mode, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const lines: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr.push(chunk.toString());
    process.stderr.write(chunk);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { mode, child, lines, stderr, exited };
}

/**
 * Waits until `service` printed `line`. Fails as soon as the process exits without having printed it,
 * and on timeout, with the process's stderr in the message.
 */
async function printed(service: Service, line: string, timeoutMs = 60_000): Promise<void> {
  const failure = (why: string) =>
    new Error(`${service.mode}: ${why} before printing "${line}"; stderr:\n${service.stderr.join('')}`);
  const exit = service.exited.then((code) => ({ code }));
  const seen = waitFor(() => service.lines.includes(line), { timeoutMs }).then(() => undefined);
  let exitedFirst: { code: number | null } | undefined;
  try {
    exitedFirst = await Promise.race([seen, exit]);
  } catch {
    throw failure(`no line in ${timeoutMs} ms`);
  }
  if (exitedFirst && !service.lines.includes(line)) {
    seen.catch(() => undefined);
    throw failure(`exited with code ${exitedFirst.code}`);
  }
}

async function kill(service: Service): Promise<void> {
  service.child.kill('SIGKILL');
  await service.exited;
}

/** Kills the service processes still running and waits for their exit, so none writes into `dispose`. */
async function killAll(): Promise<void> {
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

async function newStream(): Promise<{ name: string; subject: (key: string) => string }> {
  const name = uniqueName('SQLCRASH');
  await jsm.streams.add({ name, subjects: [`${name}.>`] });
  return { name, subject: (key) => `${name}.${key}` };
}

async function totals(database: Database): Promise<unknown[]> {
  const store = await database.open();
  try {
    return (await store.query('SELECT item, total FROM totals')).rows;
  } finally {
    await store.close();
  }
}

for (const [name, create] of Object.entries(databases)) {
  describe(`crash windows on ${name}`, () => {
    test('killed between the DB commit and the JetStream ack: the redelivery is absorbed by the inbox', async () => {
      const database = await create();
      try {
        const input = await newStream();
        const output = await newStream();
        const durable = uniqueName('totals');
        const victim = startService(
          database,
          'consume-crash-after-commit',
          input.name,
          durable,
          output.subject('pen'),
        );
        await printed(victim, 'ready');
        const event = createEnvelope({
          type: ItemCounted.type,
          source: 'orderflow/test',
          data: { item: 'pen', total: 2 },
        });
        await jetstream(nc).publish(input.subject('pen'), JSON.stringify(event.data), {
          headers: envelopeHeaders(event),
          msgID: event.id,
        });
        await printed(victim, `committed ${event.id}`);
        await kill(victim);
        assert.deepEqual(
          victim.lines.filter((l) => l.startsWith('applying')),
          [`applying ${event.id}`],
        );

        const restarted = startService(database, 'consume', input.name, durable, output.subject('pen'));
        try {
          await printed(restarted, `committed ${event.id}`);
          assert.deepEqual(
            restarted.lines.filter((l) => l.startsWith('applying')),
            [],
            'the redelivered event did not run the handler again',
          );
          await waitFor(async () => {
            const info = await jsm.consumers.info(input.name, durable);
            return info.num_ack_pending === 0 && info.num_pending === 0;
          });
          // The restarted relay publishes the follow-up event the killed process had committed.
          await waitFor(async () => (await jsm.streams.info(output.name)).state.messages === 1);
        } finally {
          await kill(restarted);
        }
        assert.deepEqual(await totals(database), [{ item: 'pen', total: 2 }], 'state changed once');
        assert.deepEqual(
          (await streamMessages(jsm, output.name)).map((m) => m.msgId),
          [`total-${event.id}`],
        );
      } finally {
        await killAll();
        await database.dispose();
      }
    });

    test('killed between the DB commit and the outbox relay: on restart the event is published exactly once', async () => {
      const database = await create();
      try {
        const output = await newStream();
        const id = uniqueName('evt');
        const victim = startService(database, 'write-crash-before-relay', output.subject('pen'), id);
        await printed(victim, 'committed');
        await kill(victim);
        assert.equal(
          (await jsm.streams.info(output.name)).state.messages,
          0,
          'nothing relayed before the crash',
        );

        const relay = startService(database, 'relay');
        assert.equal(await relay.exited, 0);
        assert.deepEqual(relay.lines, ['relayed 1 duplicates 0']);

        // A crash after the publish but before the row was marked: the row is relayed again.
        const store = await database.open();
        try {
          await store.query('UPDATE orderflow_outbox SET published_at = NULL');
        } finally {
          await store.close();
        }
        const again = startService(database, 'relay');
        assert.equal(await again.exited, 0);
        assert.deepEqual(again.lines, ['relayed 1 duplicates 1']);

        const stored = await streamMessages(jsm, output.name);
        assert.deepEqual(
          stored.map((m) => m.msgId),
          [id],
          'the stream holds the event once',
        );
        assert.deepEqual(stored[0]?.data, { item: 'pen', total: 1 });
        assert.deepEqual(await totals(database), [{ item: 'pen', total: 1 }]);
      } finally {
        await killAll();
        await database.dispose();
      }
    });
  });
}
