import { Counter, Histogram, type Registry } from 'prom-client';
import { Header } from '../envelope.ts';
import type { Delivery, Middleware } from '../types.ts';

/**
 * The `type` label of a delivery: its decoded type, else its `ce-type` header when the consumer
 * declares that type (a message that failed validation, or one dead-lettered past `maxDeliver`
 * before it was decoded, is still counted under its type), else `unknown` — so foreign producers
 * cannot grow the label set without bound.
 */
export function typeLabel(delivery: Delivery, declared: ReadonlySet<string>): string {
  const decoded = delivery.envelope?.type;
  if (decoded !== undefined) return decoded;
  const header = delivery.header(Header.Type);
  return header !== undefined && declared.has(header) ? header : 'unknown';
}

/** Prometheus instruments of the consumer runtime, registered once per registry. */
export interface ConsumerMetrics {
  handled: Counter<'consumer' | 'type'>;
  failed: Counter<'consumer' | 'type'>;
  deadLettered: Counter<'consumer' | 'type'>;
  duration: Histogram<'consumer'>;
  /**
   * Successes counted since the last scrape, per label set: the hot path adds to a number here and
   * `handled` takes them in when it is collected, instead of hashing labels for every message.
   */
  handledSinceScrape: Map<{ consumer: string; type: string }, number>;
}

const instruments = new WeakMap<Registry, ConsumerMetrics>();

export function consumerMetrics(registry: Registry): ConsumerMetrics {
  let metrics = instruments.get(registry);
  if (!metrics) {
    const handledSinceScrape = new Map<{ consumer: string; type: string }, number>();
    metrics = {
      handledSinceScrape,
      handled: new Counter({
        name: 'orderflow_messages_handled_total',
        help: 'Messages handled successfully',
        labelNames: ['consumer', 'type'],
        registers: [registry],
        collect() {
          for (const [labels, count] of handledSinceScrape) if (count > 0) this.inc(labels, count);
          handledSinceScrape.clear();
        },
      }),
      failed: new Counter({
        name: 'orderflow_messages_failed_total',
        help: 'Handler failures (each attempt)',
        labelNames: ['consumer', 'type'],
        registers: [registry],
      }),
      deadLettered: new Counter({
        name: 'orderflow_messages_dead_lettered_total',
        help: 'Messages moved to the dead-letter stream',
        labelNames: ['consumer', 'type'],
        registers: [registry],
      }),
      duration: new Histogram({
        name: 'orderflow_handler_duration_seconds',
        help: 'Time from delivery to settlement',
        labelNames: ['consumer'],
        buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
        registers: [registry],
      }),
    };
    instruments.set(registry, metrics);
  }
  return metrics;
}

/**
 * Metrics: counts outcomes and times each delivery. Place it outermost to see dead letters too.
 * `declared`: the types the consumer handles (the `type` label's values, see {@link typeLabel}).
 */
export function metrics(instruments: ConsumerMetrics, declared: ReadonlySet<string> = new Set()): Middleware {
  // Label objects are reused: one per consumer and type instead of two allocations per message.
  const outcome = new Map<string, Map<string, { consumer: string; type: string }>>();
  const timing = new Map<string, { consumer: string }>();
  const outcomeLabels = (consumer: string, type: string) => {
    let byType = outcome.get(consumer);
    if (!byType) outcome.set(consumer, (byType = new Map<string, { consumer: string; type: string }>()));
    let labels = byType.get(type);
    if (!labels) byType.set(type, (labels = { consumer, type }));
    return labels;
  };
  const timingLabels = (consumer: string) => {
    let labels = timing.get(consumer);
    if (!labels) timing.set(consumer, (labels = { consumer }));
    return labels;
  };
  return (next) => async (delivery) => {
    const started = performance.now();
    try {
      await next(delivery);
      const labels = outcomeLabels(delivery.consumer, typeLabel(delivery, declared));
      instruments.handledSinceScrape.set(labels, (instruments.handledSinceScrape.get(labels) ?? 0) + 1);
    } catch (error) {
      instruments.failed.inc(outcomeLabels(delivery.consumer, typeLabel(delivery, declared)));
      throw error;
    } finally {
      instruments.duration.observe(timingLabels(delivery.consumer), (performance.now() - started) / 1000);
    }
  };
}
