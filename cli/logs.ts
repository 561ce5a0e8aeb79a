import type { LogLine, SupervisorEvent } from './supervisor.ts';

/**
 * Turns the children's output into readable lines prefixed by program and replica:
 * `[payment-processor#2] INFO  started httpPort=41234`. pino JSON lines are condensed; anything else
 * is printed as it came.
 */

const COLORS = [36, 32, 33, 35, 34, 96, 92, 93, 95, 94] as const;
const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

export interface LogFormatOptions {
  /** ANSI colours (default: when stdout is a terminal). */
  color?: boolean;
  /** Print pino JSON as it came instead of condensing it. */
  raw?: boolean;
}

export function logFormatter(options: LogFormatOptions = {}): (line: LogLine) => string {
  const color = options.color ?? process.stdout.isTTY;
  const colorOf = new Map<string, number>();
  const paint = (program: string, text: string): string => {
    if (!color) return text;
    let code = colorOf.get(program);
    if (code === undefined) {
      code = COLORS[colorOf.size % COLORS.length] ?? 36;
      colorOf.set(program, code);
    }
    return `\x1b[${code}m${text}\x1b[0m`;
  };
  return (line) => {
    const prefix = paint(line.program, `[${line.program}#${line.replica}]`);
    return `${prefix} ${options.raw ? line.line : condense(line.line)}`;
  };
}

/** `INFO  message key=value …` for a pino JSON line; the line itself otherwise. */
export function condense(line: string): string {
  if (!line.startsWith('{')) return line;
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = typeof record.level === 'number' ? (LEVELS[record.level] ?? String(record.level)) : 'INFO ';
  const fields = Object.entries(record)
    .filter(([key]) => !OMITTED.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return [level, typeof record.msg === 'string' ? record.msg : '', ...fields].filter(Boolean).join(' ');
}

/** One line for a lifecycle event, or undefined for events not worth a line. */
export function describeEvent(event: SupervisorEvent): string | undefined {
  const who = `${event.program}#${event.replica}`;
  switch (event.type) {
    case 'spawned':
      return undefined;
    case 'ready':
      return `${who} ready (pid ${event.pid})`;
    case 'exited':
      return event.expected
        ? `${who} stopped`
        : `${who} exited unexpectedly (${event.signal ?? `code ${event.code}`})`;
    case 'restarting':
      return `${who} restarting in ${event.delayMs} ms (attempt ${event.attempt})`;
    default:
      return event satisfies never;
  }
}
