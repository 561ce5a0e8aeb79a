/** Polls `condition` until it returns a truthy value (which is returned) or `timeoutMs` passes. */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`waitFor timed out: ${options.message ?? condition.toString().slice(0, 120)}`, {
        cause: last,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}

/** A promise with its resolve function exposed (Node 20 has no `Promise.withResolvers`). */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

let counter = 0;
/** A name unique within this process run, usable as a stream, consumer or subject token. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}${process.pid}_${Date.now().toString(36)}_${(counter++).toString(36)}`.replace(
    /[^A-Za-z0-9_]/g,
    '_',
  );
}
