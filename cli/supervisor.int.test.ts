// The supervisor against real child processes (tiny node scripts): readiness, restart with backoff
// after a crash, kill, rolling restart, stop order, SIGKILL after the deadline.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Supervisor, type ProgramSpec, type SupervisorEvent } from './supervisor.ts';

const node = (script: string): Pick<ProgramSpec, 'command' | 'args' | 'env'> => ({
  command: process.execPath,
  args: ['-e', script],
  env: { PATH: process.env.PATH ?? '' },
});
// Prints "ready", then lives until SIGTERM, on which it prints "bye <name>" and exits.
const worker = (name: string) =>
  node(
    `console.log('ready'); process.on('SIGTERM', () => { console.log('bye ${name}'); process.exit(0); }); setInterval(() => {}, 1000);`,
  );

test('starts replicas, restarts a killed one with a new pid, stops in reverse tier order', async () => {
  const events: SupervisorEvent[] = [];
  const lines: string[] = [];
  const supervisor = new Supervisor({
    programs: [
      { name: 'base', ...worker('base'), tier: 0, readiness: { kind: 'log', match: /^ready$/ } },
      { name: 'app', ...worker('app'), tier: 1, replicas: 2, readiness: { kind: 'log', match: /^ready$/ } },
    ],
    onEvent: (event) => events.push(event),
    onLog: (line) => lines.push(`${line.program}#${line.replica} ${line.line}`),
    restart: { initialDelayMs: 50, maxDelayMs: 200, stableAfterMs: 60_000 },
  });
  try {
    await supervisor.start();
    const first = supervisor.pids();
    assert.equal(first.app?.length, 2);
    assert.equal(first.base?.length, 1);

    await supervisor.kill('app', { replica: 2 });
    await supervisor.waitReady('app');
    const second = supervisor.pids();
    assert.equal(second.app?.[0], first.app?.[0], 'the other replica kept running');
    assert.notEqual(second.app?.[1], first.app?.[1], 'the killed replica runs again as a new process');
    assert.deepEqual(
      supervisor.list().map((r) => [r.program, r.replica, r.state, r.restarts]),
      [
        ['base', 1, 'ready', 0],
        ['app', 1, 'ready', 0],
        ['app', 2, 'ready', 1],
      ],
    );
    const crash = events.find((e) => e.type === 'exited' && !e.expected);
    assert.ok(crash?.type === 'exited' && crash.signal === 'SIGKILL');

    await supervisor.restart('app');
    assert.ok(
      supervisor.pids().app?.every((pid) => !second.app?.includes(pid)),
      'both replicas were replaced',
    );
  } finally {
    await supervisor.stop();
  }
  assert.deepEqual(supervisor.pids(), { base: [], app: [] });
  const byes = lines.filter((l) => l.includes(' bye '));
  assert.equal(byes.at(-1), 'base#1 bye base', `the lower tier stops last: ${byes.join(' | ')}`);
  assert.ok(
    events.filter((e) => e.type === 'exited' && e.expected).length >= 3,
    'stops are reported as expected exits',
  );
});

test('a port is never one that is reserved or another replica holds, whatever the allocator offers', async () => {
  // The allocator offers the reserved port first, then the first replica's port again.
  const offers = [5001, 5002, 5002, 5001, 5003];
  const supervisor = new Supervisor({
    programs: [
      {
        name: 'app',
        ...worker('app'),
        replicas: 2,
        portEnv: 'PORT',
        readiness: { kind: 'log', match: /^ready$/ },
      },
    ],
    allocatePort: async () => offers.shift() ?? 0,
    reservedPorts: [5001],
  });
  try {
    await supervisor.start();
    // The replicas start at once; which of them retried first is theirs to race.
    assert.deepEqual(
      supervisor
        .list()
        .map((r) => r.port)
        .sort(),
      [5002, 5003],
    );
  } finally {
    await supervisor.stop();
  }
});

test('a program that keeps crashing is restarted with growing delays; stop() ends the loop', async () => {
  const delays: number[] = [];
  const supervisor = new Supervisor({
    programs: [{ name: 'crashy', ...node('process.exit(3)'), readiness: { kind: 'none' } }],
    onEvent: (event) => {
      if (event.type === 'restarting') delays.push(event.delayMs);
    },
    restart: { initialDelayMs: 20, maxDelayMs: 80, stableAfterMs: 60_000 },
  });
  await supervisor.start();
  while (delays.length < 4) await new Promise((resolve) => setTimeout(resolve, 20));
  await supervisor.stop();
  assert.deepEqual(delays.slice(0, 4), [20, 40, 80, 80]);
  assert.deepEqual(supervisor.pids(), { crashy: [] });
});

test('a child that ignores SIGTERM is SIGKILLed after the stop deadline', async () => {
  const events: SupervisorEvent[] = [];
  const supervisor = new Supervisor({
    programs: [
      {
        name: 'stubborn',
        ...node(`process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000);`),
        readiness: { kind: 'log', match: /^ready$/ },
      },
    ],
    onEvent: (event) => events.push(event),
    stopDeadlineMs: 300,
  });
  await supervisor.start();
  await supervisor.stop();
  const exit = events.find((e) => e.type === 'exited');
  assert.ok(exit?.type === 'exited' && exit.signal === 'SIGKILL' && exit.expected, JSON.stringify(exit));
});

test('rejects a bad configuration with every problem at once', () => {
  assert.throws(
    () =>
      new Supervisor({
        programs: [
          { name: 'a', ...node(''), replicas: 0 },
          { name: 'a', ...node('') },
        ],
      }),
    (error: Error) => /declared twice/.test(error.message) && /replicas must be/.test(error.message),
  );
});
