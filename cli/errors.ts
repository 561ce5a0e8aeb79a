/**
 * Errors of the `orderflow` command that mean "this cannot work as asked" rather than a bug: the
 * command prints the message as one line (no stack) and exits 1. Each has a stable `code`.
 */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly code: 'NATS_UNREACHABLE' | 'NOT_ORDERFLOW' | 'GATEWAY_UNREACHABLE' | 'ALREADY_RUNNING',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The reason of a failed connection in a few words (`ECONNREFUSED`…), from the error or its causes. */
export function reasonOf(error: unknown): string {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return error instanceof Error ? error.message : String(error);
}
