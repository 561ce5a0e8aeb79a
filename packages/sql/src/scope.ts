import { AsyncLocalStorage } from 'node:async_hooks';
import { SqlClosedError, SqlNestedUseError } from './errors.ts';
import type { SqlExecutor, SqlTransaction } from './types.ts';

/**
 * What both adapters share around the driver: refusing work after `close()`, waiting for running
 * work on close, detecting use of the store inside its own transaction, and after-commit callbacks.
 */
export class StoreScope {
  readonly #insideTransaction = new AsyncLocalStorage<true>();
  readonly #running = new Set<Promise<unknown>>();
  #closed = false;

  /** Runs `operation` unless the store is closed or we are inside one of its transactions. */
  run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new SqlClosedError());
    if (this.#insideTransaction.getStore()) return Promise.reject(new SqlNestedUseError());
    const running = operation();
    const tracked = running.then(
      () => undefined,
      () => undefined,
    );
    this.#running.add(tracked);
    void tracked.then(() => this.#running.delete(tracked));
    return running;
  }

  /**
   * Runs a transaction's work with `executor`, marking the async context so nested store use is
   * refused. Returns the result and the callbacks to run once the transaction committed.
   */
  async work<T>(
    executor: SqlExecutor,
    work: (tx: SqlTransaction) => Promise<T>,
  ): Promise<{ result: T; committed: () => void }> {
    const callbacks: (() => void)[] = [];
    let open = true;
    const tx: SqlTransaction = {
      query: (sql, params) => {
        if (!open) return Promise.reject(new SqlClosedError());
        return executor.query(sql, params);
      },
      onCommit: (callback) => void callbacks.push(callback),
    };
    try {
      const result = await this.#insideTransaction.run(true, () => work(tx));
      return { result, committed: () => callbacks.forEach((callback) => queueMicrotask(callback)) };
    } finally {
      open = false;
    }
  }

  /** Refuses new work, waits for running work, then runs `shutdown` once. */
  async close(shutdown: () => Promise<void>): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#running);
    await shutdown();
  }
}
