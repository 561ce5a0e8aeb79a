import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsCluster } from '@orderflow/testing';
import type { Supervisor } from '../supervisor.ts';
import type { ServiceName } from '../system.ts';
import type { ChaosBroker, ChaosBus } from './bus.ts';
import type { PgProxy } from './pg-proxy.ts';
import type { PoisonMessage } from './poison.ts';
import type { RabbitNode } from './rabbit-node.ts';
import type { SeededRandom } from './random.ts';

/** The classes of fault the harness injects (issue: "Prove it survives"). */
export const FAULT_CLASSES = [
  /** SIGKILL of one replica of a service, restarted after a random delay. */
  'kill',
  /** The single nats-server stops (SIGTERM) and comes back on the same store after a random delay. */
  'nats-restart',
  /** One node of the 3-node JetStream cluster is killed (SIGKILL) and brought back. */
  'node-kill',
  /**
   * RabbitMQ: the node's application is stopped (`rabbitmqctl stop_app`, every connection closed) and
   * started again after a random delay. It restarts the node the run talks to, every vhost on it.
   */
  'broker-restart',
  /** PostgreSQL unreachable for 10–20 s: every connection reset, new ones refused. */
  'pg-outage',
  /** The payment provider answers 5xx in bursts, fails after committing, then answers too late. */
  'psp',
  /** Every service in turn is stopped with SIGTERM (it drains) and started again, under load. */
  'rolling-restart',
  /** Raw poison messages on every subject namespace (see poison.ts). */
  'poison',
] as const;
export type FaultClass = (typeof FAULT_CLASSES)[number];

/** The broker the system runs on, and on NATS its shape. */
export interface BrokerMode {
  readonly broker: ChaosBroker;
  /** NATS only. */
  readonly nats: 'single' | 'cluster';
}

/** The fault classes that apply to a broker mode (each breaks the broker its own way). */
export function faultClassesFor(mode: BrokerMode): FaultClass[] {
  const brokerFault: FaultClass =
    mode.broker === 'rabbitmq' ? 'broker-restart' : mode.nats === 'single' ? 'nats-restart' : 'node-kill';
  const brokerFaults: readonly FaultClass[] = ['nats-restart', 'node-kill', 'broker-restart'];
  return FAULT_CLASSES.filter((f) => f === brokerFault || !brokerFaults.includes(f));
}

/** Problems of a fault list for a broker mode, all at once (empty when every class applies). */
export function faultProblems(faults: readonly FaultClass[], mode: BrokerMode): string[] {
  const applicable = faultClassesFor(mode);
  const where = mode.broker === 'rabbitmq' ? 'RabbitMQ' : `NATS ${mode.nats}`;
  return faults
    .filter((f) => !applicable.includes(f))
    .map((f) => `fault ${f} does not apply to ${where} (there: ${applicable.join(', ')})`);
}

export interface FaultStep {
  readonly fault: FaultClass;
  /** The service of a `kill`. */
  readonly service?: ServiceName;
}

/** What the run did to the system, and how long it took to recover. */
export interface FaultRecord {
  readonly fault: FaultClass;
  /** What was hit: `payment-processor#2`, `nats node 1`, `PostgreSQL`… */
  readonly target: string;
  /** Milliseconds since the run started. */
  readonly startedAtMs: number;
  /** From injection until the fault was lifted (the process back, the link restored). */
  readonly durationMs: number;
  /** From the fault being lifted until an order placed then was terminal; undefined if none was. */
  recoveryMs?: number;
}

/**
 * The plan: every service killed `killsPerService` times plus one of each other class, in a seeded
 * random order.
 */
export function planFaults(
  classes: readonly FaultClass[],
  services: readonly ServiceName[],
  random: SeededRandom,
  killsPerService: number,
): FaultStep[] {
  const steps: FaultStep[] = [];
  for (const fault of classes) {
    if (fault !== 'kill') steps.push({ fault });
    else
      for (let i = 0; i < killsPerService; i++)
        for (const service of services) steps.push({ fault, service });
  }
  return random.shuffle(steps);
}

/** What a fault needs to reach. */
export interface FaultTargets {
  readonly supervisor: Supervisor;
  readonly services: readonly ServiceName[];
  readonly random: SeededRandom;
  /** Cluster mode: the nodes to kill. */
  readonly cluster?: NatsCluster;
  /** PostgreSQL mode: the link to cut. */
  readonly pgProxy?: PgProxy;
  readonly pgOutageMs: { min: number; max: number };
  readonly pspUrl: string;
  /** payment-processor's deadline for a PSP call: `psp` makes the PSP slower than this. */
  readonly pspTimeoutMs: number;
  /** The harness's side of the bus: publishes the poison. */
  readonly bus: ChaosBus;
  /** RabbitMQ mode: the node to restart. */
  readonly rabbitNode?: RabbitNode;
  /** Receives the poison messages published, to explain the dead letters later. */
  readonly onPoison: (messages: readonly PoisonMessage[]) => void;
  readonly readyTimeoutMs: number;
  /** Figures of a fault worth telling the operator (how long the broker took to stop and start…). */
  readonly onNote?: (note: string) => void;
}

/** Injects one fault and resolves when it has been lifted; returns what was hit. */
export async function injectFault(step: FaultStep, targets: FaultTargets): Promise<string> {
  const { supervisor, random } = targets;
  switch (step.fault) {
    case 'kill': {
      const service = step.service ?? random.pick(targets.services);
      const replicas = supervisor.list().filter((r) => r.program === service);
      const replica = random.pick(replicas).replica;
      await supervisor.kill(service, { replica, restartDelayMs: random.int(200, 3_000) });
      await supervisor.waitReady(service, { timeoutMs: targets.readyTimeoutMs });
      return `${service}#${replica}`;
    }
    case 'nats-restart': {
      await supervisor.kill('nats-server', { signal: 'SIGTERM', restartDelayMs: random.int(500, 3_000) });
      await supervisor.waitReady('nats-server', { timeoutMs: targets.readyTimeoutMs });
      return 'nats-server';
    }
    case 'node-kill': {
      const nodes = targets.cluster?.nodes;
      if (!nodes) throw new Error('node-kill needs the cluster mode (--nats cluster)');
      const index = random.int(0, nodes.length - 1);
      await nodes[index]!.kill();
      await sleep(random.int(2_000, 6_000));
      await nodes[index]!.start();
      return `nats node n${index}`;
    }
    case 'broker-restart': {
      const node = targets.rabbitNode;
      if (!node) throw new Error('broker-restart needs RabbitMQ (--broker rabbitmq)');
      const restartsBefore = replicaRestarts(supervisor, targets.services);
      const took = await node.restart(random.int(500, 3_000));
      targets.onNote?.(
        `RabbitMQ stop_app ${took.stopMs} ms, down ${took.downMs} ms, start_app ${took.startMs} ms`,
      );
      // Every service lost its connection (not reopened on RabbitMQ): it exits and is restarted.
      await untilRestarted(supervisor, restartsBefore, targets.readyTimeoutMs);
      for (const service of targets.services)
        await supervisor.waitReady(service, { timeoutMs: targets.readyTimeoutMs });
      return 'RabbitMQ node';
    }
    case 'pg-outage': {
      const proxy = targets.pgProxy;
      if (!proxy) throw new Error('pg-outage needs PostgreSQL (DATABASE_URL mode)');
      proxy.cut();
      await sleep(random.int(targets.pgOutageMs.min, targets.pgOutageMs.max));
      proxy.restore();
      return 'PostgreSQL';
    }
    case 'psp': {
      await setPspFaults(targets.pspUrl, { failNextRequests: 6, errorRate: 0.2, errorAfterCommitRate: 0.2 });
      await sleep(3_000);
      await setPspFaults(targets.pspUrl, { failNextRequests: 0, errorRate: 0, errorAfterCommitRate: 0 });
      await setPspFaults(targets.pspUrl, { latencyMs: targets.pspTimeoutMs + 500 });
      await sleep(3_000);
      await setPspFaults(targets.pspUrl, { latencyMs: 0 });
      return 'payment-provider';
    }
    case 'rolling-restart': {
      for (const service of targets.services) await supervisor.restart(service);
      return targets.services.join(', ');
    }
    case 'poison': {
      targets.onPoison(await targets.bus.publishPoison());
      return targets.bus.broker === 'rabbitmq' ? 'events exchange' : 'ORDERING stream';
    }
    default: {
      const unknown: never = step.fault;
      throw new Error(`unknown fault ${String(unknown)}`);
    }
  }
}

/** Restarts so far of each replica of `services`, by `program#replica`. */
function replicaRestarts(supervisor: Supervisor, services: readonly ServiceName[]): Map<string, number> {
  return new Map(
    supervisor
      .list()
      .filter((r) => (services as readonly string[]).includes(r.program))
      .map((r) => [`${r.program}#${r.replica}`, r.restarts]),
  );
}

/** Waits until every replica in `before` was restarted since; fails naming those that were not. */
async function untilRestarted(
  supervisor: Supervisor,
  before: ReadonlyMap<string, number>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const waiting = supervisor.list().flatMap((r) => {
      const name = `${r.program}#${r.replica}`;
      const restarts = before.get(name);
      return restarts !== undefined && r.restarts <= restarts ? [name] : [];
    });
    if (waiting.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(`not restarted after the broker restart: ${waiting.join(', ')}`);
    await sleep(100);
  }
}

async function setPspFaults(pspUrl: string, faults: Record<string, number>): Promise<void> {
  const response = await fetch(`${pspUrl}/admin/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  if (!response.ok) throw new Error(`PUT /admin/faults: ${response.status} ${await response.text()}`);
}
