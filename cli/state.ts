import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BrokerKind } from '@orderflow/messaging';

/**
 * Where a running `orderflow up` can be reached. `up` writes it to `<DATA_DIR>/orderflow-up.json`
 * once everything is ready and removes it on a clean stop, so `tail`, `dlq`, `place` and `doctor`
 * find the system even when `up` moved NATS (or the PSP, the SMTP sink) off a port that was taken.
 */
export interface UpState {
  /** Pid of the `up` process: a state whose pid is gone is stale (`up` was killed) and ignored. */
  readonly pid: number;
  readonly startedAt: string;
  /** The broker the system runs on (absent in the files of older versions: NATS). */
  readonly broker?: BrokerKind;
  /** The NATS the system runs on; absent on RabbitMQ. */
  readonly natsUrl?: string;
  /** The RabbitMQ the system runs on, and how the operator logs in; absent on NATS. */
  readonly rabbit?: {
    /** Without credentials, e.g. `amqp://127.0.0.1:5672`. */
    readonly url: string;
    readonly vhost: string;
    /** The operator's user and the file of its password (mode 0600). */
    readonly operatorUser: string;
    readonly operatorPasswordFile: string;
  };
  readonly apiUrl: string;
  readonly mailboxUrl: string;
  readonly pspUrl: string;
  /** Ports the system listens on, by what listens there (the labels `doctor` prints). */
  readonly ports: Readonly<Record<string, number>>;
}

export const STATE_FILE = 'orderflow-up.json';

export function statePath(dataDir: string): string {
  return join(resolve(dataDir), STATE_FILE);
}

/** Writes the state atomically (a reader never sees half a file). */
export async function writeUpState(dataDir: string, state: UpState): Promise<void> {
  await mkdir(resolve(dataDir), { recursive: true });
  const path = statePath(dataDir);
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`);
  await rename(temporary, path);
}

/** Removes the state if it is the one `pid` wrote. */
export async function removeUpState(dataDir: string, pid: number): Promise<void> {
  if (readState(dataDir)?.pid === pid) await rm(statePath(dataDir), { force: true });
}

/** The broker of a state (NATS for the files of older versions, which did not record it). */
export function brokerOf(state: UpState): BrokerKind {
  return state.broker ?? BrokerKind.Nats;
}

/** The state's broker in a few words: `NATS nats://…` or `RabbitMQ amqp://… vhost orderflow`. */
export function describeBus(state: UpState): string {
  return state.rabbit
    ? `RabbitMQ ${state.rabbit.url} vhost ${state.rabbit.vhost}`
    : `NATS ${state.natsUrl ?? '(unknown)'}`;
}

/** The state of a running `up` on `dataDir`: `undefined` when there is none, it is unreadable, or stale. */
export function readUpState(dataDir: string): UpState | undefined {
  const state = readState(dataDir);
  return state && alive(state.pid) ? state : undefined;
}

function readState(dataDir: string): UpState | undefined {
  try {
    const state = JSON.parse(readFileSync(statePath(dataDir), 'utf8')) as Partial<UpState>;
    const bus =
      state.broker === BrokerKind.RabbitMQ
        ? typeof state.rabbit?.url === 'string'
        : typeof state.natsUrl === 'string';
    return typeof state.pid === 'number' && bus && typeof state.apiUrl === 'string'
      ? (state as UpState)
      : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
