import type { Delivery, Middleware } from '../types.ts';

/** Asks the delivery itself when it can answer without building its child logger (JetStreamDelivery can). */
function debugEnabled(delivery: Delivery): boolean {
  const own = (delivery as Partial<{ isLevelEnabled(level: 'debug'): boolean }>).isLevelEnabled;
  return own ? own.call(delivery, 'debug') : delivery.logger.isLevelEnabled('debug');
}

/**
 * Logging: one structured line per failure (with consumer, subject, sequence, delivery count and, once
 * decoded, type, event id and correlation id); successes are logged at debug level.
 */
export function logging(): Middleware {
  return (next) => async (delivery) => {
    try {
      await next(delivery);
      if (debugEnabled(delivery)) delivery.logger.debug('handled');
    } catch (error) {
      delivery.logger.warn(
        { err: error, deliveryCount: delivery.deliveryCount, settled: delivery.settled },
        `handler failed: ${(error as Error).message}`,
      );
      throw error;
    }
  };
}
