import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { StoredMessage } from './domain/mailbox.ts';

/** An smtp-sink process started for a test. */
export interface SmtpSinkProcess {
  readonly smtpPort: number;
  readonly httpUrl: string;
  messages(query?: { to?: string; header?: string }): Promise<StoredMessage[]>;
  message(id: string): Promise<StoredMessage>;
  clear(): Promise<void>;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/** Starts `src/main.ts` as its own process on free ports and waits until it listens. */
export async function spawnSmtpSink(): Promise<SmtpSinkProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...process.env, SMTP_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const ports = await new Promise<{ smtpPort: number; httpPort: number }>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const record = JSON.parse(line) as { smtpPort?: number; httpPort?: number; msg?: string };
        if (record.msg === 'smtp sink listening' && record.smtpPort && record.httpPort)
          resolve({ smtpPort: record.smtpPort, httpPort: record.httpPort });
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`smtp-sink exited with ${code}: ${stderr}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const httpUrl = `http://127.0.0.1:${ports.httpPort}`;
  return {
    smtpPort: ports.smtpPort,
    httpUrl,
    async messages(query = {}) {
      const response = await fetch(`${httpUrl}/messages?${new URLSearchParams(query).toString()}`);
      return ((await response.json()) as { messages: StoredMessage[] }).messages;
    },
    async message(id) {
      const response = await fetch(`${httpUrl}/messages/${id}`);
      if (!response.ok) throw new Error(`message ${id}: ${response.status}`);
      return (await response.json()) as StoredMessage;
    },
    async clear() {
      await fetch(`${httpUrl}/messages`, { method: 'DELETE' });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
