import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { OrderingTopology, OrderStatusChanged } from '@orderflow/contracts';
import { BrokerKind, removeRabbitUsers } from '@orderflow/messaging';
import { createRabbitVhost, freePort, waitFor, type RabbitVhost } from '@orderflow/testing';
import { demoOrder } from './api.ts';
import { WrongBrokerError } from './errors.ts';
import { checkSystemConfig, startSystem, type RunningSystem, type SystemConfig } from './system.ts';
import { seedPgliteDataDir } from '@orderflow/sql/testing';

const run = promisify(execFile);
const { endpoints, notifications } = OrderingTopology;

async function ports(): Promise<Pick<SystemConfig, 'gatewayPort' | 'pspPort' | 'smtpPort' | 'mailboxPort'>> {
  const [gatewayPort, pspPort, smtpPort, mailboxPort] = await Promise.all(
    Array.from({ length: 4 }, () => freePort()),
  );
  return { gatewayPort: gatewayPort!, pspPort: pspPort!, smtpPort: smtpPort!, mailboxPort: mailboxPort! };
}

const quiet = { baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME }, ownProcessGroup: false };

test('a RabbitMQ system refuses the NATS settings and credentials or a vhost in amqpUrl, all at once', () => {
  const issues = checkSystemConfig({
    dataDir: '/unused',
    broker: 'rabbitmq',
    natsUrl: 'nats://127.0.0.1:4222',
    streamReplicas: 3,
    amqpUrl: 'amqp://guest:guest@127.0.0.1:5672/other',
    rabbitVhost: 'bad vhost',
  });
  assert.deepEqual(issues, [
    'natsUrl: only with broker nats',
    'streamReplicas: only with broker nats',
    'amqpUrl: without credentials (every process gets its own user)',
    "amqpUrl: without a vhost (the system's is rabbitVhost): amqp://guest:guest@127.0.0.1:5672/other",
    'rabbitVhost: must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ (got "bad vhost")',
  ]);
  assert.deepEqual(checkSystemConfig({ dataDir: '/unused', rabbitVhost: 'orderflow' }), [
    'rabbitVhost: only with broker rabbitmq',
  ]);
  assert.deepEqual(checkSystemConfig({ dataDir: '/unused', broker: 'kafka' as BrokerKind }), [
    'broker: one of nats, rabbitmq (got "kafka")',
  ]);
});

describe(
  'createSystem on RabbitMQ: order-storage and order-status on a fresh vhost',
  { timeout: 180_000 },
  () => {
    let vhost: RabbitVhost;
    let dataDir: string;
    let system: RunningSystem | undefined;
    const lines: string[] = [];

    before(async () => {
      vhost = await createRabbitVhost();
      dataDir = await mkdtemp(join(tmpdir(), 'orderflow-system-rabbit-'));
      // order-storage reopens an initialised database instead of running initdb.
      await seedPgliteDataDir(join(dataDir, 'order-storage'));
      system = await startSystem({
        dataDir,
        broker: 'rabbitmq',
        rabbitVhost: vhost.name,
        chaosIdentity: true,
        only: ['order-storage', 'order-status'],
        ...(await ports()),
        ...quiet,
        readyTimeoutMs: 90_000,
        onLog: (line) => lines.push(`${line.program}: ${line.line}`),
      }).catch((error: unknown) => {
        throw new Error(`the system did not start:\n${lines.slice(-40).join('\n')}`, { cause: error });
      });
    });

    after(async () => {
      await system?.stop();
      if (system?.rabbit)
        await removeRabbitUsers(system.rabbit.identities, { userPrefix: system.rabbit.userPrefix });
      await vhost?.dispose();
      await rm(dataDir, { recursive: true, force: true });
    });

    test('no nats-server; each service is connected to the vhost as its own user', async () => {
      assert.ok(system);
      assert.equal(system.broker, BrokerKind.RabbitMQ);
      assert.equal(system.natsUrl, undefined);
      assert.ok(!system.supervisor.programs.includes('nats-server'), system.supervisor.programs.join(', '));
      const { stdout } = await run('rabbitmqctl', [
        'list_connections',
        '-q',
        '--no-table-headers',
        'vhost',
        'user',
      ]);
      const users = stdout
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .filter(([v]) => v === vhost.name)
        .map(([, user]) => user);
      for (const service of ['order-storage', 'order-status'])
        assert.ok(users.includes(`${vhost.name}-${service}`), `${service} as its user: ${users.join(', ')}`);
      assert.ok(!users.includes('guest'), users.join(', '));
    });

    test('the passwords are 0600 files under <dataDir>/secrets/rabbitmq, the chaos identity’s too', async () => {
      assert.ok(system?.rabbit);
      assert.equal(system.rabbit.secretsDir, join(dataDir, 'secrets', 'rabbitmq'));
      assert.equal((await stat(system.rabbit.secretsDir)).mode & 0o777, 0o700);
      for (const identity of ['order-storage', 'gateway', 'operator', 'provisioner', 'chaos'])
        assert.equal(
          (await stat(join(system.rabbit.secretsDir, `${identity}.amqp-password`))).mode & 0o777,
          0o600,
          identity,
        );
      assert.ok(system.rabbit.identities.includes('chaos'));
      const chaosUrl = new URL(system.amqpUrl('chaos'));
      assert.equal(decodeURIComponent(chaosUrl.username), `${vhost.name}-chaos`);
      assert.equal(decodeURIComponent(chaosUrl.pathname.slice(1)), vhost.name);
    });

    test('a transport as the chaos identity hears the status notifications of an order placed as the gateway, and lists dead letters', async () => {
      assert.ok(system);
      const chaos = await system.transport('system-rabbit-chaos', 'chaos');
      const edge = await system.transport('system-rabbit-edge', 'gateway');
      assert.equal(chaos.kind, BrokerKind.RabbitMQ);
      const heard = new Set<string>();
      chaos.transport.listen(OrderStatusChanged, notifications.statusChangedAll, (event) =>
        heard.add(event.data.orderId),
      );
      const { customerId } = await edge.transport.request(
        endpoints.registerCustomer,
        { email: `c-${randomUUID()}@example.com`, name: 'Rabbit Customer' },
        { timeoutMs: 10_000 },
      );
      const order = demoOrder(customerId);
      // The listener's queue is bound asynchronously: orders placed before it was are not heard.
      const placed: string[] = [];
      await waitFor(
        async () => {
          const { orderId } = await edge.transport.request(
            endpoints.placeOrder,
            { ...order, customerId, items: [...order.items], idempotencyKey: randomUUID() },
            { timeoutMs: 10_000 },
          );
          placed.push(orderId);
          return placed.some((id) => heard.has(id));
        },
        { timeoutMs: 30_000, intervalMs: 300, message: 'a status notification of an order placed' },
      );
      assert.deepEqual(await chaos.transport.deadLetters.list(), []);
      await edge.close();
      // Left open: stop() closes it.
    });

    test('connect() (NATS) is refused with a WrongBrokerError', async () => {
      assert.ok(system);
      await assert.rejects(
        system.connect('system-rabbit-nats'),
        (error: unknown) => error instanceof WrongBrokerError && error.code === 'WRONG_BROKER',
      );
    });

    test('no service met a refusal of its permissions', () => {
      assert.deepEqual(system?.permissionViolations(), []);
    });
  },
);

test('createSystem on NATS: a transport as the operator lists dead letters; no AMQP URL there', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-system-nats-'));
  const system = await startSystem({
    dataDir,
    only: [],
    natsPort: await freePort(),
    ...(await ports()),
    ...quiet,
  });
  try {
    assert.equal(system.broker, BrokerKind.Nats);
    assert.equal(system.rabbit, undefined);
    const operator = await system.transport('system-nats-operator');
    assert.equal(operator.kind, BrokerKind.Nats);
    assert.deepEqual(await operator.transport.deadLetters.list(), []);
    assert.throws(() => system.amqpUrl('chaos'), WrongBrokerError);
  } finally {
    await system.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
