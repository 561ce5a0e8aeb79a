import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { DevIssuer, ensureDevSigningKey } from '@orderflow/gateway/dev-issuer';
import { createRabbitVhost, waitFor, type RabbitVhost } from '@orderflow/testing';

// The composition roots (`services/*/src/main.ts`) as processes, with BROKER=rabbitmq: those whose
// adapters still need NATS refuse at start with a typed error; the others run on a real vhost.
const root = fileURLToPath(new URL('..', import.meta.url));
let vhost: RabbitVhost;
let scratch: string;
before(async () => {
  vhost = await createRabbitVhost();
  scratch = await mkdtemp(join(tmpdir(), 'broker-choice-'));
});
after(async () => {
  await vhost.dispose();
  await rm(scratch, { recursive: true, force: true });
});

function start(service: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${service}/src/main.ts`], {
    cwd: root,
    env: { ...process.env, ORDERFLOW_NAMESPACE: `broker-choice-${service}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, output: () => output };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const natsOnly: [service: string, needs: RegExp, env?: Record<string, string>][] = [
  // On RabbitMQ order-storage keeps its log in SQL by default; only the JetStream log needs NATS.
  ['order-storage', /order event log on JetStream/, { ORDER_EVENT_LOG: 'jetstream' }],
];

test('services whose adapters need NATS refuse BROKER=rabbitmq at start, naming what is missing', async () => {
  // Nothing listens there: a service that tried to connect first would wait instead of failing.
  const amqpUrl = `amqp://127.0.0.1:${await freePort()}`;
  await Promise.all(
    natsOnly.map(async ([service, needs, env]) => {
      const run = start(service, {
        ...env,
        BROKER: 'rabbitmq',
        AMQP_URL: amqpUrl,
      });
      const timer = setTimeout(() => run.child.kill('SIGKILL'), 60_000);
      const code = await run.exited;
      clearTimeout(timer);
      assert.notEqual(code, 0, `${service} exited with ${code}`);
      assert.match(run.output(), /BROKER_UNSUPPORTED/, service);
      assert.match(run.output(), new RegExp(`${service} cannot run on RabbitMQ yet`), service);
      assert.match(run.output(), needs, service);
    }),
  );
});

test('an unknown BROKER is a config error listing the problem', async () => {
  const run = start('payment-processor', { BROKER: 'kafka' });
  assert.notEqual(await run.exited, 0);
  assert.match(run.output(), /BROKER must be one of nats, rabbitmq \(got "kafka"\)/);
});

test('the services sharing invoice PDFs refuse BROKER=rabbitmq without BLOB_DIR, as a config error', async () => {
  await Promise.all(
    ['create-invoice', 'email-notify', 'gateway'].map(async (service) => {
      const run = start(service, {
        BROKER: 'rabbitmq',
        AMQP_URL: vhost.url,
        AUTH_DEV_KEY_FILE: join(scratch, 'unused-dev-key.json'),
      });
      assert.notEqual(await run.exited, 0, service);
      assert.match(run.output(), /INVALID_CONFIG/, service);
      assert.match(run.output(), /BLOB_DIR is required with BROKER=rabbitmq/, service);
    }),
  );
});

/** Starts `service` on the vhost, waits for `/readyz` 200 on `port`, then SIGTERM: it must exit 0. */
async function runsOnRabbit(
  service: string,
  port: number,
  env: Record<string, string>,
  whileReady?: () => Promise<void>,
) {
  const run = start(service, { BROKER: 'rabbitmq', AMQP_URL: vhost.url, ...env });
  try {
    const ready = await waitFor(
      async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        return response?.status === 200 ? ((await response.json()) as Record<string, unknown>) : undefined;
      },
      { timeoutMs: 60_000, message: `${service} never ready:\n${run.output()}` },
    );
    await whileReady?.();
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.output());
    return ready;
  } finally {
    run.child.kill('SIGKILL');
  }
}

test('payment-processor runs on RabbitMQ from its main.ts: ready, then drains on SIGTERM and exits 0', async () => {
  const port = await freePort();
  const ready = await runsOnRabbit('payment-processor', port, { HTTP_PORT: String(port) });
  assert.equal(ready.connected, true);
  assert.deepEqual(ready.notConsuming, []);
});

// order-status keeps its statuses in SQL (PGlite in DATA_DIR); create-invoice, email-notify and the
// gateway share the invoice PDFs in BLOB_DIR.
for (const service of ['order-status', 'create-invoice', 'email-notify'] as const) {
  test(`${service} runs on RabbitMQ from its main.ts: ready, then drains on SIGTERM and exits 0`, async () => {
    const port = await freePort();
    const ready = await runsOnRabbit(service, port, {
      HTTP_PORT: String(port),
      DATA_DIR: join(scratch, service),
      BLOB_DIR: join(scratch, 'blobs'),
    });
    assert.equal(ready.connected, true);
    assert.deepEqual(ready.notConsuming, []);
  });
}

test('the gateway runs on RabbitMQ from its main.ts; its console answers 503 naming NATS', async () => {
  const port = await freePort();
  const keyFile = join(scratch, 'dev-key.json');
  await ensureDevSigningKey(keyFile);
  const operator = await (await DevIssuer.open(keyFile)).operatorToken('operator:broker-choice');
  const ready = await runsOnRabbit(
    'gateway',
    port,
    { PORT: String(port), AUTH_DEV_KEY_FILE: keyFile, BLOB_DIR: join(scratch, 'blobs') },
    async () => {
      const response = await fetch(`http://127.0.0.1:${port}/console/topology`, {
        headers: { authorization: `Bearer ${operator}` },
      });
      assert.equal(response.status, 503);
      assert.match(response.headers.get('content-type') ?? '', /application\/problem\+json/);
      const body = (await response.json()) as { code?: string; detail?: string };
      assert.equal(body.code, 'CONSOLE_UNAVAILABLE');
      assert.match(body.detail ?? '', /needs NATS/);
    },
  );
  assert.equal(ready.ready, true);
});
