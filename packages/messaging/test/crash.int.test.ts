import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { ThingHappened } from '../src/conformance/transport.ts';
import { connectNats, NatsTransport, on } from '../src/mod.ts';

let server: NatsServer;
let dir: string;
const children = new Set<ChildProcess>();
before(async () => {
  server = await startNatsServer();
  dir = await mkdtemp(join(tmpdir(), 'orderflow-crash-'));
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await server.dispose();
});

const fixture = new URL('./fixtures/consumer-process.ts', import.meta.url).pathname;

function startConsumer(
  stream: string,
  durable: string,
  log: string,
  mode: 'hang' | 'slow' | 'normal',
): ChildProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fixture, server.url, stream, durable, log, mode],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const lines = async (log: string) =>
  (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code)),
  );

async function publisher(stream: string) {
  const { nc } = await connectNats({ servers: server.url, name: 'crash-test' });
  const transport = await NatsTransport.create(nc, { source: 'orderflow/crash-test' });
  await transport.provision([{ name: stream, subjects: [`${stream}.>`] }]);
  return {
    nc,
    transport,
    publish: (n: number) => transport.publish(ThingHappened, { key: 'k', n }, { subject: `${stream}.k` }),
  };
}

test('a consumer killed with SIGKILL mid-handler: the message is redelivered to its restart and completed there', async (t) => {
  const stream = uniqueName('CRASH');
  const durable = uniqueName('crashy');
  const log = join(dir, `${durable}.log`);
  const { nc, publish } = await publisher(stream);
  t.after(() => nc.close());
  const victim = startConsumer(stream, durable, log, 'hang');
  await waitFor(async () => (await lines(log)).includes('hang ready'));
  await publish(1);
  await waitFor(async () => (await lines(log)).some((l) => l.startsWith('hang started 1 1')));
  victim.kill('SIGKILL');
  await exited(victim);

  const restarted = startConsumer(stream, durable, log, 'normal');
  t.after(() => void restarted.kill('SIGKILL'));
  await waitFor(async () => (await lines(log)).some((l) => l.startsWith('normal done 1')), {
    timeoutMs: 20_000,
  });
  const log1 = await lines(log);
  assert.ok(
    log1.every((l) => !l.startsWith('hang done')),
    `the killed process never completed the handler: ${log1.join(' / ')}`,
  );
  // The completion is the redelivery (the only copy went to the killed process first). Its delivery
  // count is usually 2, but nats-server 2.9.10 sometimes reports 1 when the client died holding the
  // message, so the count is not asserted (see docs/delivery-semantics.md).
  assert.ok(
    log1.some((l) => l.startsWith('normal started 1')),
    `completed by the restarted process: ${log1.join(' / ')}`,
  );
  // Delivery is at least once: the server may hand the restarted consumer a further copy; handlers
  // that must act once use the inbox (packages/sql crash tests). Here we only require completion.
  const jsm = await jetstreamManager(nc);
  await waitFor(async () => {
    const info = await jsm.consumers.info(stream, durable);
    return info.num_ack_pending === 0 && info.num_pending === 0;
  });
  restarted.kill('SIGTERM');
  assert.equal(await exited(restarted), 0);
});

test('SIGTERM drains: the in-flight handler finishes, the process exits 0, nothing is redelivered', async (t) => {
  const stream = uniqueName('DRAIN');
  const durable = uniqueName('drainy');
  const log = join(dir, `${durable}.log`);
  const { nc, publish } = await publisher(stream);
  t.after(() => nc.close());
  const child = startConsumer(stream, durable, log, 'slow');
  await waitFor(async () => (await lines(log)).includes('slow ready'));
  await publish(1);
  await waitFor(async () => (await lines(log)).some((l) => l.startsWith('slow started 1 1')));
  child.kill('SIGTERM');
  assert.equal(await exited(child), 0);
  assert.ok((await lines(log)).includes('slow done 1 1'), 'the in-flight handler completed before exit');
  const jsm = await jetstreamManager(nc);
  const info = await jsm.consumers.info(stream, durable);
  assert.equal(info.num_ack_pending, 0);
  assert.equal(info.num_redelivered, 0);
  assert.equal(info.num_pending, 0);
});

test('a NATS server restart under a running consumer loses nothing', async (t) => {
  const stream = uniqueName('RESTART');
  const { nc, transport, publish } = await publisher(stream);
  t.after(async () => {
    await transport.close();
    await nc.close();
  });
  const handled = new Set<number>();
  await transport.consume({
    name: uniqueName('survivor'),
    stream,
    ackWaitMs: 2_000,
    handlers: [on(ThingHappened, async (event) => void handled.add(event.data.n))],
  });
  for (let n = 0; n < 150; n++) await publish(n);
  await waitFor(() => handled.size > 0);
  await server.restart();
  for (let n = 150; n < 300; n++) await publish(n);
  await waitFor(() => handled.size === 300, {
    timeoutMs: 30_000,
    message: 'all 300 events handled after the restart',
  });
});
