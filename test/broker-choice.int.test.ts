import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { createRabbitVhost, waitFor, type RabbitVhost } from '@orderflow/testing';

// The composition roots (`services/*/src/main.ts`) as processes, with BROKER=rabbitmq: those whose
// adapters still need NATS refuse at start with a typed error; payment-processor runs on a real vhost.
const root = fileURLToPath(new URL('..', import.meta.url));
let vhost: RabbitVhost;
before(async () => (vhost = await createRabbitVhost()));
after(() => vhost.dispose());

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
  ['order-status', /order status store \(JetStream KV bucket\)/],
  ['create-invoice', /invoice PDF archive/],
  ['email-notify', /invoice PDFs it attaches/],
  ['gateway', /invoice PDF downloads.*operations console/],
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
        AUTH_DEV_KEY_FILE: '/nonexistent/dev-key.json', // the gateway's auth must be configured first
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

test('payment-processor runs on RabbitMQ from its main.ts: ready, then drains on SIGTERM and exits 0', async () => {
  const port = await freePort();
  const run = start('payment-processor', {
    BROKER: 'rabbitmq',
    AMQP_URL: vhost.url,
    HTTP_PORT: String(port),
  });
  try {
    const ready = await waitFor(
      async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        return response?.status === 200 ? ((await response.json()) as Record<string, unknown>) : undefined;
      },
      { timeoutMs: 60_000, message: `payment-processor never ready:\n${run.output()}` },
    );
    assert.equal(ready.connected, true);
    assert.deepEqual(ready.notConsuming, []);
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.output());
  } finally {
    run.child.kill('SIGKILL');
  }
});
