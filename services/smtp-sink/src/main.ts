// Composition root of the SMTP sink: the only place that reads the environment.
import { pino } from 'pino';
import { startSmtpSink } from './app.ts';

function config(env: Record<string, string | undefined>) {
  const issues: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isInteger(value) || value < min || value > max)
      issues.push(`${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const result = {
    smtpPort: int('SMTP_PORT', 2525, 0, 65_535),
    httpPort: int('HTTP_PORT', 8025, 0, 65_535),
    host: env.HOST ?? '127.0.0.1',
    maxMessages: int('MAX_MESSAGES', 10_000, 1, 1_000_000),
    maxMessageBytes: int('MAX_MESSAGE_BYTES', 25 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    logLevel: env.LOG_LEVEL ?? 'info',
  };
  if (issues.length > 0) throw new Error(`invalid configuration: ${issues.join('; ')}`);
  return result;
}

const settings = config(process.env);
const logger = pino({ name: 'smtp-sink', level: settings.logLevel });
const sink = await startSmtpSink({ ...settings, logger });
logger.warn(
  { host: settings.host, smtpPort: settings.smtpPort, httpPort: settings.httpPort },
  'development only: the mailbox shows every mail it received to anyone, without authentication; keep it on 127.0.0.1',
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    sink.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
