import { BrokerKind, rabbitPasswordFile } from '@orderflow/messaging';
import { describeEvent, logFormatter } from '../logs.ts';
import { describeBus, readUpState, removeUpState, statePath, writeUpState, type UpState } from '../state.ts';
import { checkSystemConfig, createSystem, SERVICES, serviceExists, type SystemConfig } from '../system.ts';
import { ROOT_DIR } from '../root.ts';

export interface UpOptions {
  readonly system: Omit<SystemConfig, 'onLog' | 'onEvent' | 'onWarning'>;
  /** Print children's pino JSON as it came. */
  readonly rawLogs: boolean;
}

const rootDir = ROOT_DIR;

/**
 * `orderflow up`: starts the whole system in the foreground and keeps it running; SIGINT/SIGTERM stop
 * it in order (gateway, services, PSP and SMTP sink, NATS), a second signal kills what is left. On
 * RabbitMQ the broker is not started or stopped: the system's users and queues stay in its vhost.
 */
export async function up(options: UpOptions): Promise<number> {
  const format = logFormatter({ raw: options.rawLogs });
  const say = (line: string) => process.stdout.write(`[orderflow] ${line}\n`);
  const issues = checkSystemConfig({ ...options.system, rootDir });
  if (issues.length > 0) {
    for (const issue of issues) say(`configuration: ${issue}`);
    return 2;
  }
  const dataDir = options.system.dataDir;
  const other = readUpState(dataDir);
  if (other) {
    say(
      `another orderflow up (pid ${other.pid}) runs on ${dataDir}: API ${other.apiUrl}, ${describeBus(other)}; ` +
        'stop it first, or use another --data-dir',
    );
    return 2;
  }
  const total = expectedReplicas(options.system);
  let readyCount = 0;
  let started = false;
  let signalled: NodeJS.Signals | undefined;
  let wake: () => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => (wake = resolve));

  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      say(`${signal} again: killing what is left`);
      for (const name of running.supervisor.programs)
        void running.supervisor.kill(name).catch(() => undefined);
      return;
    }
    signalled = signal;
    const last = options.system.broker === BrokerKind.RabbitMQ ? 'SMTP sink' : 'SMTP sink, NATS';
    say(`${signal}: stopping (gateway, services drain, then PSP, ${last}; again to kill)`);
    wake();
    // While starting, stopping makes the start give up.
    if (!started) void running.stop();
  };

  const config: SystemConfig = {
    ...options.system,
    rootDir,
    onLog: (line) => process.stdout.write(`${format(line)}\n`),
    onEvent: (event) => {
      if (event.type === 'ready' && !started) {
        readyCount += 1;
        say(`[${readyCount}/${total}] ${event.program}#${event.replica} ready (pid ${event.pid})`);
        return;
      }
      const line = describeEvent(event);
      if (line) say(line);
    },
    onWarning: (message) => say(`warning: ${message}`),
  };

  say(
    `starting ${total} processes (data in ${options.system.dataDir}, ` +
      `${options.system.databaseUrl ? 'PostgreSQL, a schema per service' : 'PGlite per service'})`,
  );
  const running = await createSystem(config);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await running.supervisor.start();
  } catch (error) {
    if (!signalled) say(`start failed: ${error instanceof Error ? error.message : String(error)}`);
    await running.stop();
    return signalled ? 0 : 1;
  }
  started = true;
  if (!signalled) {
    const { apiUrl, mailboxUrl, natsUrl, pspUrl, skipped, rabbit } = running;
    say('up:');
    say(`  API      ${apiUrl}   (demo order: node --import tsx cli/orderflow.ts place)`);
    say(`           bearer tokens: POST /customers answers one for the new customer; an operator token:`);
    say(`           npm run -s orderflow -- token --operator --data-dir ${options.system.dataDir}`);
    say(`           (development key ${running.devKeyFile}: anyone who can read it can act as anyone)`);
    say(`  mailbox  ${mailboxUrl}/messages   (development only: every mail, no authentication)`);
    say(`  PSP      ${pspUrl}/ledger   (development only: fake PSP, its /admin changes its behaviour)`);
    const operator = running.operatorCredentials;
    // The operator's RabbitMQ login (what `rabbitmqctl`-less tools and the management UI take).
    const rabbitOperator: UpState['rabbit'] = rabbit && {
      url: rabbit.url,
      vhost: rabbit.vhost,
      operatorUser: `${rabbit.userPrefix}operator`,
      operatorPasswordFile: rabbitPasswordFile(rabbit.secretsDir, 'operator'),
    };
    if (natsUrl !== undefined)
      say(
        `  NATS     ${natsUrl}${operator ? ` (TLS, nkeys: CLI credentials ${operator.nkeySeedFile})` : ''}`,
      );
    if (rabbitOperator) {
      say(
        `  RabbitMQ ${rabbitOperator.url} vhost ${rabbitOperator.vhost} (a user per identity: ${rabbit?.userPrefix}<identity>)`,
      );
      say(
        `           operator: user ${rabbitOperator.operatorUser}, password in ${rabbitOperator.operatorPasswordFile}`,
      );
      say('           dlq, tail and the gateway console need NATS: not available on this system');
    }
    if (options.system.natsMonitorPort !== undefined)
      say(
        `  NATS monitoring http://127.0.0.1:${options.system.natsMonitorPort}/   (development only: no authentication)`,
      );
    if (skipped.length > 0) say(`  skipped  ${skipped.join(', ')} (not in services/ yet)`);
    for (const replica of running.supervisor.list()) {
      if (replica.port === undefined) continue;
      const who = `${replica.program}#${replica.replica}`.padEnd(22);
      say(`  ${who} pid ${replica.pid}  http://127.0.0.1:${replica.port}/readyz  /metrics`);
    }
    await writeUpState(dataDir, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      broker: running.broker,
      ...(natsUrl !== undefined && { natsUrl }),
      ...(rabbitOperator && { rabbit: rabbitOperator }),
      apiUrl,
      mailboxUrl,
      pspUrl,
      ports: systemPorts(options.system),
    });
    say(`  state    ${statePath(dataDir)} (how tail, dlq, place and doctor find this system)`);
    say('Ctrl-C to stop.');
  }
  await stopRequested;
  await running.stop();
  await removeUpState(dataDir, process.pid);
  say('stopped');
  return 0;
}

/** The ports the system listens on, labelled as `doctor` prints them. */
function systemPorts(system: UpOptions['system']): Record<string, number> {
  return {
    gateway: system.gatewayPort ?? 3000,
    'payment-provider': system.pspPort ?? 4010,
    'smtp-sink SMTP': system.smtpPort ?? 2525,
    'smtp-sink mailbox': system.mailboxPort ?? 8025,
    ...(privateNats(system) && { 'private nats-server': system.natsPort ?? 4222 }),
    ...(privateNats(system) &&
      system.natsMonitorPort !== undefined && { 'nats-server monitoring': system.natsMonitorPort }),
  };
}

/** Processes `up` will start: infrastructure plus the replicas of every service that exists. */
function expectedReplicas(system: UpOptions['system']): number {
  const infra = privateNats(system) ? 3 : 2;
  return SERVICES.filter(
    (name) => (system.only ?? SERVICES).includes(name) && serviceExists(rootDir, name),
  ).reduce((n, name) => n + (system.replicas?.[name] ?? 1), infra);
}

/** Whether `up` starts a nats-server of its own. */
function privateNats(system: UpOptions['system']): boolean {
  return (system.broker ?? BrokerKind.Nats) === BrokerKind.Nats && system.natsUrl === undefined;
}
