import { randomUUID } from 'node:crypto';
import type { Channel } from 'amqplib';
import { DeadLetterTopology } from '../dead-letters.ts';
import type { StreamDeclaration } from '../topology.ts';

/**
 * Names of the RabbitMQ topology, from one builder. Events go to one durable topic exchange
 * (`orderflow.events`, routing key = the subject); each declared stream is a topic exchange bound to
 * it for its subjects and a RabbitMQ stream queue that retains the log; each consumer is a quorum
 * queue bound to its stream's exchange, with a retry queue (paced retries by per-message TTL, dead-
 * lettered back to the consumer's queue) and one shared dead-letter queue.
 *
 * Nothing is published to the default exchange: write access to it (`amq.default`) would let a user
 * put a message into any queue by name, past every topic permission. Requests, replies, retries, dead
 * letters and redrives each go through their own topic exchange, whose routing keys the broker's
 * topic permissions restrict per user (see `rabbitPermissions`).
 */
export const RabbitTopology = {
  events: 'orderflow.events',
  broadcast: 'orderflow.broadcast',
  /** Requests, routing key = the endpoint's subject; each endpoint's queue is bound with it. */
  rpc: 'orderflow.rpc',
  /** Replies, routing key = the requester's reply queue (one of its private queues). */
  replies: 'orderflow.replies',
  /** Dead letters, routing key `deadletter.<stream>.<consumer>` (the NATS dead-letter subject). */
  deadLetterExchange: 'orderflow.deadletter',
  /** Paced retries, routing key = the consumer's retry queue. */
  retry: 'orderflow.retry',
  /** Redrives, routing key `redrive.<stream>.<consumer>` (the NATS redrive subject). */
  redrive: 'orderflow.redrive',
  streamExchange: (stream: string) => `stream.${stream}`,
  logQueue: (stream: string) => `log.${stream}`,
  consumerQueue: (stream: string, consumer: string) => `${stream}.${consumer}`,
  retryQueue: (stream: string, consumer: string) => `${stream}.${consumer}.retry`,
  deadLetterQueue: 'orderflow.deadletters',
  endpointQueue: (subject: string) => `rpc.${subject}`,
  /** Where every identity's private queues are. */
  privateRoot: 'orderflow.tmp.',
  /** Prefix of an identity's exclusive queues (reply queue, broadcast listeners): only it may declare them. */
  privatePrefix: (identity: string) => `orderflow.tmp.${identity}.`,
  privateQueue: (identity: string) => `orderflow.tmp.${identity}.${randomUUID()}`,
} as const;

/**
 * The topic exchanges every process uses besides the stream exchanges. All durable, the broadcast one
 * too (its listeners' queues are exclusive and its messages transient): a broker restart drops a
 * transient exchange, and provisioned services, which only check the topology, could not start again.
 */
export const RABBIT_EXCHANGES = [
  { name: RabbitTopology.events, durable: true },
  { name: RabbitTopology.broadcast, durable: true },
  { name: RabbitTopology.rpc, durable: true },
  { name: RabbitTopology.replies, durable: true },
  { name: RabbitTopology.deadLetterExchange, durable: true },
  { name: RabbitTopology.retry, durable: true },
  { name: RabbitTopology.redrive, durable: true },
] as const;

/** A NATS subject pattern as an AMQP topic binding key (`*` stays, `>` becomes `#`). */
export function bindingKey(subject: string): string {
  return subject.replace(/(^|\.)>$/, '$1#');
}

/** What a consumer's queues are declared with; the same whether the service or the provisioner declares them. */
export interface RabbitConsumerDeclaration {
  readonly stream: string;
  readonly name: string;
  /** Default: every subject of the stream. */
  readonly filterSubject?: string | undefined;
  /** Per-key order (`ConsumerSpec.orderingKey` set): the queue has a single active consumer. */
  readonly ordered: boolean;
  /** The runtime's attempts (`ConsumerSpec.maxDeliver`, default 5); the broker's cap is 3 above it. */
  readonly maxDeliver?: number | undefined;
}

/** The broker's delivery limit for a consumer whose runtime gives up after `maxDeliver` attempts. */
export function serverMaxDeliverOf(maxDeliver: number): number {
  return maxDeliver + 3;
}

/** Declares the shared exchanges and the dead-letter queue (needs configure rights on them). */
export async function declareRabbitBase(ch: Channel): Promise<void> {
  for (const exchange of RABBIT_EXCHANGES)
    await ch.assertExchange(exchange.name, 'topic', { durable: exchange.durable });
  await ch.assertQueue(RabbitTopology.deadLetterQueue, {
    durable: true,
    arguments: { 'x-queue-type': 'quorum' },
  });
  await ch.bindQueue(RabbitTopology.deadLetterQueue, RabbitTopology.deadLetterExchange, '#');
}

/** Declares a stream: its exchange bound to the events exchange for its subjects, and its log queue. */
export async function declareRabbitStream(ch: Channel, stream: StreamDeclaration): Promise<void> {
  const exchange = RabbitTopology.streamExchange(stream.name);
  await ch.assertExchange(exchange, 'topic', { durable: true });
  const log = RabbitTopology.logQueue(stream.name);
  await ch.assertQueue(log, {
    durable: true,
    arguments: {
      'x-queue-type': 'stream',
      ...(stream.maxAgeMs !== undefined && { 'x-max-age': `${Math.ceil(stream.maxAgeMs / 1000)}s` }),
    },
  });
  await ch.bindQueue(log, exchange, '#');
  for (const subject of stream.subjects)
    await ch.bindExchange(exchange, RabbitTopology.events, bindingKey(subject));
}

/** Declares a consumer's quorum queue and retry queue and binds them (stream, retry, redrive). */
export async function declareRabbitConsumer(ch: Channel, decl: RabbitConsumerDeclaration): Promise<void> {
  const queue = RabbitTopology.consumerQueue(decl.stream, decl.name);
  const retryQueue = RabbitTopology.retryQueue(decl.stream, decl.name);
  await ch.assertQueue(queue, {
    durable: true,
    arguments: {
      'x-queue-type': 'quorum',
      // The broker's own cap, above the runtime's: a message that crashed its consumers that often
      // is dead-lettered by the broker (reason `delivery_limit`).
      'x-delivery-limit': serverMaxDeliverOf(decl.maxDeliver ?? 5),
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': RabbitTopology.deadLetterQueue,
      ...(decl.ordered && { 'x-single-active-consumer': true }),
    },
  });
  await ch.assertQueue(retryQueue, {
    durable: true,
    arguments: {
      'x-queue-type': 'quorum',
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': queue,
    },
  });
  await ch.bindQueue(
    queue,
    RabbitTopology.streamExchange(decl.stream),
    bindingKey(decl.filterSubject ?? '>'),
  );
  await ch.bindQueue(
    queue,
    RabbitTopology.redrive,
    DeadLetterTopology.redriveSubject(decl.stream, decl.name),
  );
  await ch.bindQueue(retryQueue, RabbitTopology.retry, retryQueue);
}
