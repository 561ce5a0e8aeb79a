import { trace, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ContractRegistry, type MessageContract, type PayloadOf } from './contract.ts';
import { readEnvelope, type Envelope } from './envelope.ts';
import { MessagingError, ProducerError } from './errors.ts';
import { decodeAndValidate } from './middleware/decode.ts';
import { retryAndDeadLetter, type DeadLetterWriter } from './middleware/dead-letter.ts';
import { logging } from './middleware/logging.ts';
import { consumerMetrics, metrics, typeLabel } from './middleware/metrics.ts';
import { checkProducer, isForged } from './middleware/producer.ts';
import { tracing } from './middleware/tracing.ts';
import type {
  ConsumerSpec,
  Delivery,
  DeliveryHandler,
  EventPublisher,
  HandlerContext,
  Middleware,
  PublishOptions,
  PublishReceipt,
} from './types.ts';

/** What the broker-neutral consumer pipeline needs from the transport that runs it. */
export interface PipelineOptions {
  spec: ConsumerSpec;
  /** Publishes the events handlers cause (with correlation and causation carried). */
  publisher: EventPublisher;
  /** Writes a dead letter to the transport's dead-letter store. */
  writeDeadLetter: DeadLetterWriter;
  /** The broker's own delivery cap, above `spec.maxDeliver` (see `retryAndDeadLetter`). */
  serverMaxDeliver: number;
  registry: Registry;
  tracer?: Tracer;
}

/**
 * The consumer pipeline every transport runs: metrics, logging, retry and dead letter, decode and
 * validate, producer check, tracing, the consumer's own middleware (where an inbox goes), then dispatch to the
 * typed handler. Broker-specific code only supplies {@link Delivery} objects and settles them.
 */
export function consumerPipeline(options: PipelineOptions): DeliveryHandler {
  const { spec, publisher } = options;
  const registry = new ContractRegistry(spec.handlers.map((h) => h.contract));
  const instruments = consumerMetrics(options.registry);
  const declared = new Set(spec.handlers.map((h) => h.contract.type));
  const onDeadLetter = spec.onDeadLetter;
  // The order below is the order of execution, outermost first.
  const middleware: Middleware[] = [
    metrics(instruments, declared), // sees every outcome, dead letters included
    logging(), // one line per failure
    retryAndDeadLetter({
      write: options.writeDeadLetter,
      ...(onDeadLetter && {
        afterDeadLetter: async (delivery: Delivery, error: unknown) => {
          // A delivery beyond maxDeliver is dead-lettered before the decoding step runs.
          const envelope = delivery.envelope ?? decodedOrNothing(delivery, registry);
          // Not the owner's event (forged, or on another's subject): it says nothing about the
          // order, so it must not end one.
          if (!envelope || error instanceof ProducerError) return;
          if (spec.producers && isForged(spec.producers, delivery.subject, envelope)) return;
          await onDeadLetter(envelope, error, new DeliveryContext(delivery, envelope, publisher));
        },
        serverMaxDeliver: options.serverMaxDeliver,
      }),
      onDeadLetter: (delivery) =>
        instruments.deadLettered.inc({ consumer: delivery.consumer, type: typeLabel(delivery, declared) }),
    }),
    decodeAndValidate(registry), // envelope + schema
    ...(spec.producers ? [checkProducer(spec.producers)] : []), // ce-source owns the subject; before the inbox
    tracing(options.tracer ?? trace.getTracer('@orderflow/messaging')), // span child of the producer's
    ...(spec.middleware ?? []),
  ];
  return middleware.reduceRight<DeliveryHandler>((next, wrap) => wrap(next), dispatcher(spec, publisher));
}

function dispatcher(spec: ConsumerSpec, publisher: EventPublisher): DeliveryHandler {
  const handlers = new Map(spec.handlers.map((h) => [h.contract.type, h.handle]));
  // Not an async function (one promise and three microtask turns fewer per message); a handler
  // that throws instead of rejecting still ends as a rejection.
  return (delivery) => {
    const envelope = delivery.envelope;
    const handle = envelope && handlers.get(envelope.type);
    try {
      if (!envelope || !handle)
        throw new MessagingError('NOT_DECODED', 'dispatch without a decoded envelope');
      return handle(envelope, new DeliveryContext(delivery, envelope, publisher));
    } catch (error) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what was thrown, as an async function would reject
      return Promise.reject(error);
    }
  };
}

/** The delivery's valid envelope, or `undefined` when it is not a valid message of a handled contract. */
function decodedOrNothing(delivery: Delivery, registry: ContractRegistry): Envelope | undefined {
  try {
    const envelope = readEnvelope(delivery, delivery.body);
    registry.resolve(envelope.type).parse(envelope.data);
    return envelope;
  } catch {
    return undefined;
  }
}

/** The {@link HandlerContext} of one delivery (one allocation per message, no closures). */
class DeliveryContext implements HandlerContext {
  constructor(
    private readonly delivery: Delivery,
    private readonly envelope: Envelope,
    private readonly publisher: EventPublisher,
  ) {}

  get deliveryCount(): number {
    return this.delivery.deliveryCount;
  }

  get streamSequence(): number {
    return this.delivery.streamSequence;
  }

  get consumer(): string {
    return this.delivery.consumer;
  }

  get logger(): Logger {
    return this.delivery.logger;
  }

  working(): void {
    this.delivery.working();
  }

  publish<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: Omit<PublishOptions, 'causedBy'>,
  ): Promise<PublishReceipt> {
    return this.publisher.publish(contract, data, { ...options, causedBy: this.envelope });
  }
}
