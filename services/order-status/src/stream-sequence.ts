import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from '@orderflow/messaging';

/*
 * Handlers get the envelope and a context, not the delivery's stream sequence. This middleware makes
 * the sequence of the delivery being handled readable inside the handler (`currentStreamSequence()`).
 * (A `streamSequence` on `HandlerContext` in @orderflow/messaging would make it unnecessary.)
 */
const storage = new AsyncLocalStorage<number>();

/** Runs the rest of the chain with the delivery's stream sequence in scope. */
export const streamSequence: Middleware = (next) => (delivery) =>
  storage.run(delivery.streamSequence, () => next(delivery));

/** The stream sequence of the delivery being handled, or `undefined` outside {@link streamSequence}. */
export function currentStreamSequence(): number | undefined {
  return storage.getStore();
}
