import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FaultConfig } from './domain/faults.ts';
import type { LedgerEntry } from './domain/ledger.ts';

/** A payment-provider process started for a test, with a temporary data directory. */
export interface PaymentProviderProcess {
  readonly url: string;
  readonly dataDir: string;
  setFaults(faults: Partial<FaultConfig>): Promise<FaultConfig>;
  ledger(query?: { reference?: string; kind?: 'charge' | 'refund' }): Promise<LedgerEntry[]>;
  /** SIGTERM, wait for exit. Keeps the data directory. */
  stop(): Promise<void>;
  /** Stops and deletes the data directory. */
  dispose(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/** Starts `src/main.ts` as its own process on a free port and waits until it listens. */
export async function spawnPaymentProvider(
  options: { faults?: Partial<FaultConfig>; dataDir?: string } = {},
): Promise<PaymentProviderProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'orderflow-psp-')));
  const env: Record<string, string> = {
    ...process.env,
    PORT: '0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
  };
  const names: Record<keyof FaultConfig, string> = {
    latencyMs: 'PSP_LATENCY_MS',
    latencyJitterMs: 'PSP_LATENCY_JITTER_MS',
    errorRate: 'PSP_ERROR_RATE',
    failNextRequests: 'PSP_FAIL_NEXT_REQUESTS',
    errorAfterCommitRate: 'PSP_ERROR_AFTER_COMMIT_RATE',
    hangMs: 'PSP_HANG_MS',
  };
  for (const [key, value] of Object.entries(options.faults ?? {}))
    env[names[key as keyof FaultConfig]] = String(value);
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const record = JSON.parse(line) as { port?: number; msg?: string };
        if (record.msg === 'payment provider listening' && record.port) resolve(record.port);
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`payment-provider exited with ${code}: ${stderr}`)));
  });
  child.stdout?.resume();
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return {
    url,
    dataDir,
    async setFaults(faults) {
      const response = await fetch(`${url}/admin/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(faults),
      });
      if (!response.ok) throw new Error(`setting faults failed: ${response.status} ${await response.text()}`);
      return (await response.json()) as FaultConfig;
    },
    async ledger(query = {}) {
      const params = new URLSearchParams(query as Record<string, string>);
      const response = await fetch(`${url}/ledger?${params.toString()}`);
      return ((await response.json()) as { entries: LedgerEntry[] }).entries;
    },
    stop,
    async dispose() {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
