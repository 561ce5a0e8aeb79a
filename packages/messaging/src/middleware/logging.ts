import type { Middleware } from '../types.ts';

/**
 * Logging: one structured line per failure (with consumer, subject, sequence, delivery count and, once
 * decoded, type, event id and correlation id); successes are logged at debug level.
 */
export function logging(): Middleware {
  return (next) => async (delivery) => {
    try {
      await next(delivery);
      if (delivery.logger.isLevelEnabled('debug')) delivery.logger.debug('handled');
    } catch (error) {
      delivery.logger.warn(
        { err: error, deliveryCount: delivery.deliveryCount, settled: delivery.settled },
        `handler failed: ${(error as Error).message}`,
      );
      throw error;
    }
  };
}
