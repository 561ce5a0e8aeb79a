// `npm start`'s path: the services bundled by scripts/build.mjs and run by the system with plain node.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '@orderflow/testing';
import { checkSystemConfig, NODE_MEMORY_ARGS, NODE_MEMORY_ENV, programFile, startSystem } from './system.ts';

const rootDir = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

test('runtime dist without a build is a configuration problem that names the missing programs', async () => {
  const emptyRoot = await mkdtemp(join(tmpdir(), 'orderflow-nobuild-'));
  try {
    // A root whose services have sources but no dist/.
    for (const name of ['gateway', 'payment-provider', 'smtp-sink']) {
      await mkdir(join(emptyRoot, 'services', name, 'src'), { recursive: true });
      await writeFile(join(emptyRoot, 'services', name, 'src', 'main.ts'), '');
    }
    const issues = checkSystemConfig({ rootDir: emptyRoot, dataDir: emptyRoot, runtime: 'dist' });
    assert.equal(issues.length, 1);
    assert.match(issues[0] ?? '', /no build of payment-provider, smtp-sink, gateway .*npm run build/);
    assert.deepEqual(checkSystemConfig({ rootDir: emptyRoot, dataDir: emptyRoot, runtime: 'tsx' }), []);
  } finally {
    await rm(emptyRoot, { recursive: true, force: true });
  }
});

test('the build runs: the gateway, PSP and SMTP sink start from dist/ with plain node and serve', async () => {
  const build = spawnSync(
    process.execPath,
    [join(rootDir, 'scripts', 'build.mjs'), 'gateway', 'payment-provider', 'smtp-sink'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(build.status, 0, build.stderr);
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-dist-'));
  const [natsPort, gatewayPort, pspPort, smtpPort, mailboxPort] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );
  const system = await startSystem({
    rootDir,
    dataDir,
    runtime: 'dist',
    only: ['gateway'],
    natsPort: natsPort!,
    gatewayPort: gatewayPort!,
    pspPort: pspPort!,
    smtpPort: smtpPort!,
    mailboxPort: mailboxPort!,
    baseEnv: { PATH: process.env.PATH, LOG_LEVEL: 'warn' },
    ownProcessGroup: false,
    readyTimeoutMs: 120_000,
  });
  try {
    for (const program of ['gateway', 'payment-provider', 'smtp-sink']) {
      const pid = system.supervisor.pids()[program]?.[0];
      assert.ok(pid, program);
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      assert.deepEqual(
        argv.slice(1),
        [...NODE_MEMORY_ARGS, programFile(program, 'dist')],
        `${program} runs its bundle without tsx, with the system's memory settings`,
      );
      const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
      for (const [name, value] of Object.entries(NODE_MEMORY_ENV))
        assert.ok(environ.includes(`${name}=${value}`), `${program} has ${name}=${value}`);
    }
    // The dashboard files the gateway reads beside its code were copied next to the bundle.
    const page = await fetch(`${system.apiUrl}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    for (const file of ['dashboard.mjs', 'console.html', 'console.mjs', 'console.css']) {
      const asset = await fetch(`${system.apiUrl}/dashboard/${file}`);
      assert.equal(asset.status, 200, file);
      await asset.arrayBuffer();
    }
    // A bundled workspace package at work: no token is a 401, bad input with one the typed problem.
    const post = (headers: Record<string, string>) =>
      fetch(`${system.apiUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1', ...headers },
        body: '{"items": 3}',
      });
    const anonymous = await post({});
    assert.equal(anonymous.status, 401);
    await anonymous.arrayBuffer();
    const bad = await post({ authorization: `Bearer ${await system.operatorToken()}` });
    assert.equal(bad.status, 400);
    assert.match(bad.headers.get('content-type') ?? '', /application\/problem\+json/);
    await bad.arrayBuffer();
  } finally {
    await system.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("npm start's CLI runs from its bundle: up starts the system and stops it on SIGTERM", async () => {
  const build = spawnSync(
    process.execPath,
    [join(rootDir, 'scripts', 'build.mjs'), 'gateway', 'payment-provider', 'smtp-sink', 'cli'],
    { encoding: 'utf8' },
  );
  assert.equal(build.status, 0, build.stderr);
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-cli-dist-'));
  const ports = await Promise.all(Array.from({ length: 5 }, () => freePort()));
  const [natsPort, gatewayPort, pspPort, smtpPort, mailboxPort] = ports.map(String);
  const up = spawn(
    process.execPath,
    [
      join(rootDir, 'cli', 'dist', 'orderflow.mjs'),
      'up',
      ...['--runtime', 'dist', '--only', 'gateway', '--data-dir', dataDir],
      ...['--port', gatewayPort!, '--nats-port', natsPort!, '--psp-port', pspPort!],
      ...['--smtp-port', smtpPort!, '--mailbox-port', mailboxPort!],
    ],
    { cwd: tmpdir(), env: { PATH: process.env.PATH, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  up.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  up.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = once(up, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    const deadline = Date.now() + 120_000;
    let healthy = false;
    while (!healthy && Date.now() < deadline && up.exitCode === null) {
      healthy = await fetch(`http://127.0.0.1:${gatewayPort}/healthz`)
        .then(async (r) => (await r.arrayBuffer(), r.ok))
        .catch(() => false);
      if (!healthy) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.ok(healthy, `the gateway answered /healthz (run from anywhere: cwd is ${tmpdir()}):\n${output}`);
    // up writes its state file once everything is ready, which may be after the gateway answers.
    const stateFile = join(dataDir, 'orderflow-up.json');
    for (const until = Date.now() + 60_000; !existsSync(stateFile) && Date.now() < until;)
      await new Promise((resolve) => setTimeout(resolve, 250));
    const pid = Number(/"pid":\s*(\d+)/.exec(await readFile(stateFile, 'utf8'))?.[1]);
    assert.equal(pid, up.pid, 'the state file names the bundled CLI as the supervisor');
  } finally {
    up.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, output);
    await rm(dataDir, { recursive: true, force: true });
  }
});
