// The `orderflow` command as a user runs it (a child process): `up` records where it runs and the
// other commands find it; a wrong or absent server gets one clear line; doctor checks what up would do.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { orderingBusIdentities, OrderingTopology } from '@orderflow/contracts';
import {
  connectNats,
  NatsTransport,
  ProvisioningTopology,
  RemoteProvisioner,
  removeRabbitUsers,
} from '@orderflow/messaging';
import { createRabbitVhost, freePort, startNatsServer, waitFor } from '@orderflow/testing';
import { busCredentials } from './bus.ts';
import { doctor } from './commands/doctor.ts';
import { STATE_FILE, type UpState } from './state.ts';

const rootDir = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
// No NATS_URL, PORT, DATA_DIR from the caller's shell: the commands must find the system themselves.
const baseEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn' };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/orderflow.ts', ...args], {
    cwd: rootDir,
    env: baseEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
  const exited = new Promise<Run>((resolveRun) =>
    child.once('exit', (code) => resolveRun({ code, ...output })),
  );
  return { child, output, exited };
}

const run = (args: string[]): Promise<Run> => start(args).exited;

/** The error a command printed: exactly one line, no stack trace. */
function oneLine(result: Run): string {
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /^\s+at /m);
  return lines[0]!;
}

test('up records where it runs; dlq, tail and doctor find it there; a clean stop removes the record', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-cli-'));
  const [nats, gateway, psp, smtp, mailbox] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
  const portFlags = [
    ...['--nats-port', String(nats), '--port', String(gateway), '--psp-port', String(psp)],
    ...['--smtp-port', String(smtp), '--mailbox-port', String(mailbox)],
  ];
  const up = start(['up', '--only', 'gateway', '--data-dir', dataDir, ...portFlags]);
  try {
    await waitFor(() => up.output.stdout.includes('Ctrl-C to stop.') || up.child.exitCode !== null, {
      timeoutMs: 120_000,
    });
    assert.match(up.output.stdout, /Ctrl-C to stop\./, up.output.stdout);
    const state = JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8')) as UpState;
    assert.equal(state.pid, up.child.pid);
    const natsUrl = state.natsUrl ?? assert.fail('the state names no NATS');
    assert.equal(natsUrl, `nats://127.0.0.1:${nats}`);
    assert.equal(state.apiUrl, `http://127.0.0.1:${gateway}`);

    // A dead letter on that system, so `dlq list` shows it only if it talks to the right NATS. Its bus
    // is secured: payment-processor's consumer (created by up's provisioner) dead-letters what
    // order-storage's identity appended.
    const secrets = { dir: join(dataDir, 'secrets'), tls: { caFile: join(dataDir, 'secrets', 'ca.pem') } };
    const as = async (identity: 'order-storage' | 'payment-processor' | 'operator') =>
      (await connectNats({ servers: natsUrl, name: 'cli-test', ...busCredentials(secrets, identity) })).nc;
    const nc = await as('payment-processor');
    const consumer = OrderingTopology.consumers.paymentProcessor.orders;
    const transport = await NatsTransport.create(nc, {
      source: 'orderflow/payment-processor',
      ensureConsumer: new RemoteProvisioner(
        nc,
        await jetstreamManager(nc),
        ProvisioningTopology.subject('payment-processor'),
      ).ensureConsumer,
    });
    await transport.consume({ ...consumer, handlers: [] });
    const producer = await as('order-storage');
    await jetstream(producer).publish(OrderingTopology.subjects.order('cli-test'), 'not a CloudEvent');
    const operator = await NatsTransport.create(await as('operator'), { source: 'orderflow/cli-test' });
    await waitFor(async () => (await operator.deadLetters.list({ consumer: consumer.name })).length === 1);
    await operator.nc.close();
    await transport.close();
    await nc.close();
    await producer.close();

    const listed = await run(['dlq', 'list', '--data-dir', dataDir]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /payment-processor-orders\s.*DECODE_FAILED/);
    assert.match(
      listed.stderr,
      new RegExp(`NATS nats://127\\.0\\.0\\.1:${nats} \\(orderflow up, pid ${up.child.pid}`),
    );

    const tail = start(['tail', '--data-dir', dataDir]);
    await waitFor(
      () => tail.output.stderr.includes(`at nats://127.0.0.1:${nats}`) || tail.child.exitCode !== null,
    );
    assert.match(tail.output.stderr, /listening on .* at nats:\/\/127\.0\.0\.1:/, tail.output.stderr);
    tail.child.kill('SIGTERM');
    assert.equal((await tail.exited).code, 0);

    const checked = await run(['doctor', '--data-dir', dataDir, ...portFlags]);
    assert.equal(checked.code, 0, checked.stdout);
    assert.match(checked.stdout, new RegExp(`orderflow up\\s+running \\(pid ${up.child.pid}`));
    assert.match(checked.stdout, /running NATS\s.*ORDERING stream present/);
    assert.match(checked.stdout, /running gateway\s.*ready/);
    assert.match(
      checked.stdout,
      new RegExp(`port ${nats}\\s+in use by the running system \\(private nats-server\\)`),
    );
    assert.match(checked.stdout, new RegExp(`port ${gateway}\\s+in use by the running system \\(gateway\\)`));
  } finally {
    up.child.kill('SIGTERM');
    const stopped = await up.exited;
    assert.equal(stopped.code, 0, stopped.stdout.slice(-2000));
    assert.equal(existsSync(join(dataDir, STATE_FILE)), false, 'the state file is removed on a clean stop');
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('up --broker rabbitmq records the vhost and the operator login; dlq reads its dead letters; the NATS-only commands say they need NATS; doctor checks the vhost', async () => {
  const vhost = await createRabbitVhost();
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-cli-rabbit-'));
  const [gateway, psp, smtp, mailbox] = await Promise.all([1, 2, 3, 4].map(() => freePort()));
  const portFlags = [
    ...['--port', String(gateway), '--psp-port', String(psp)],
    ...['--smtp-port', String(smtp), '--mailbox-port', String(mailbox)],
  ];
  const up = start([
    ...['up', '--broker', 'rabbitmq', '--vhost', vhost.name, '--only', 'gateway', '--data-dir', dataDir],
    ...portFlags,
  ]);
  try {
    await waitFor(() => up.output.stdout.includes('Ctrl-C to stop.') || up.child.exitCode !== null, {
      timeoutMs: 120_000,
    });
    assert.match(up.output.stdout, /Ctrl-C to stop\./, up.output.stdout);
    assert.doesNotMatch(up.output.stdout, /NATS {5}/);
    const passwordFile = join(dataDir, 'secrets', 'rabbitmq', 'operator.amqp-password');
    assert.match(up.output.stdout, new RegExp(`RabbitMQ amqp://127\\.0\\.0\\.1:5672 vhost ${vhost.name}`));
    assert.ok(
      up.output.stdout.includes(`operator: user ${vhost.name}-operator, password in ${passwordFile}`),
    );
    const state = JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8')) as UpState;
    assert.equal(state.broker, 'rabbitmq');
    assert.equal(state.natsUrl, undefined);
    assert.deepEqual(state.rabbit, {
      url: 'amqp://127.0.0.1:5672',
      vhost: vhost.name,
      operatorUser: `${vhost.name}-operator`,
      operatorPasswordFile: passwordFile,
    });

    // The dead letters are the store port's: on RabbitMQ the dead-letter queue, read as the operator.
    const letters = await run(['dlq', 'list', '--data-dir', dataDir]);
    assert.equal(letters.code, 0, letters.stderr);
    assert.match(letters.stdout, /no dead letters/);
    assert.match(letters.stderr, new RegExp(`RabbitMQ .* vhost ${vhost.name} as ${vhost.name}-operator`));
    const missing = await run(['dlq', 'show', '1', '--data-dir', dataDir]);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /no dead letter with sequence 1/);

    for (const command of [['tail'], ['streams']]) {
      const result = await run([...command, '--data-dir', dataDir]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        oneLine(result),
        new RegExp(
          `orderflow ${command[0]} needs NATS; this system runs on RabbitMQ \\(orderflow up, pid ${up.child.pid}`,
        ),
      );
    }
    const checked = await run(['doctor', '--data-dir', dataDir, ...portFlags]);
    assert.match(
      checked.stdout,
      new RegExp(`orderflow up\\s+running .*RabbitMQ amqp://127\\.0\\.0\\.1:5672 vhost ${vhost.name}`),
    );
    assert.match(
      checked.stdout,
      new RegExp(`✔  running RabbitMQ\\s+.* as ${vhost.name}-operator: 0 dead letter`),
    );
    assert.match(checked.stdout, /running gateway\s.*ready/);
  } finally {
    up.child.kill('SIGTERM');
    const stopped = await up.exited;
    assert.equal(stopped.code, 0, stopped.stdout.slice(-2000));
    assert.equal(existsSync(join(dataDir, STATE_FILE)), false, 'the state file is removed on a clean stop');
    const identities = orderingBusIdentities(OrderingTopology).map((i) => i.name);
    await Promise.all(identities.map((i) => removeRabbitUsers([i], { userPrefix: `${vhost.name}-` })));
    await vhost.dispose();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a server without Orderflow streams, no server at all, or no gateway: one line that says so', async () => {
  const bare = await startNatsServer();
  const nobody = await freePort();
  try {
    for (const command of [['dlq', 'list'], ['tail']]) {
      const result = await run([...command, '--nats', bare.url]);
      assert.equal(result.code, 1);
      assert.match(oneLine(result), new RegExp(`NATS at ${bare.url} has no ORDERING stream`));
    }
    const unreachable = await run(['dlq', 'list', '--nats', `nats://127.0.0.1:${nobody}`]);
    assert.equal(unreachable.code, 1);
    assert.match(oneLine(unreachable), /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    const placed = await run(['place', '--api', `http://127.0.0.1:${nobody}`]);
    assert.equal(placed.code, 1);
    assert.match(oneLine(placed), /cannot reach the gateway at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  } finally {
    await bare.dispose();
  }
});

test('doctor: a taken port up would move away from is a note; a port a flag chose is a failure', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-doctor-'));
  const taken: Server = createServer();
  await new Promise<void>((resolveListen) => taken.listen(0, '127.0.0.1', resolveListen));
  const port = (taken.address() as { port: number }).port;
  const lines: string[] = [];
  try {
    const options = {
      natsUrl: undefined,
      databaseUrl: undefined,
      dataDir,
      running: undefined,
      say: (line: string) => lines.push(line),
    };
    const movable = await doctor({
      ...options,
      ports: [{ what: 'private nats-server', port, movable: { flag: '--nats-port' } }],
    });
    assert.equal(movable, 0, lines.join('\n'));
    assert.ok(
      lines.some((l) => l.includes(`port ${port}`) && l.includes('up will take a free port instead')),
    );

    // Through the command line: --nats-port fixes the port, as it does for up.
    const others = await Promise.all([1, 2, 3, 4].map(() => freePort()));
    const result = await run([
      'doctor',
      '--data-dir',
      dataDir,
      '--nats-port',
      String(port),
      ...['--port', String(others[0]), '--psp-port', String(others[1])],
      ...['--smtp-port', String(others[2]), '--mailbox-port', String(others[3])],
    ]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stdout, new RegExp(`✘  port ${port}\\s+in use \\(private nats-server\\)`));
    assert.match(result.stdout, /1 check\(s\) failed/);
  } finally {
    taken.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
