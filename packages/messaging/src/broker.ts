import type { NatsConnection } from '@nats-io/nats-core';
import type { ChannelModel } from 'amqplib';
import type { ServerFeatures } from './connection.ts';
import { MessagingError } from './errors.ts';
import type { RabbitTransport } from './rabbitmq/transport.ts';
import type { NatsAuth } from './service-settings.ts';
import type { NatsTransport } from './transport.ts';

/** The brokers a service can run on (`BROKER`). */
export const BrokerKind = { Nats: 'nats', RabbitMQ: 'rabbitmq' } as const;
export type BrokerKind = (typeof BrokerKind)[keyof typeof BrokerKind];

/** A service on NATS: JetStream for events, core NATS for request-reply and fan-out. */
export interface NatsBrokerConfig {
  readonly kind: typeof BrokerKind.Nats;
  /** NATS URL(s); several nodes of a cluster as an array or one comma-separated string. */
  readonly servers: string | string[];
  /**
   * Credentials on a secured bus. With an nkey the service is one identity of the server's config:
   * its inbox prefix is `_INBOX_<name>`, and its durable consumers are created by the provisioner
   * (`ProvisioningTopology.subject(name)`), since the service may not create them itself.
   */
  readonly auth?: NatsAuth;
  /** Replicas of the dead-letter stream (default 1; 3 in a cluster). */
  readonly deadLetterReplicas?: number;
}

/** A service on RabbitMQ (AMQP 0-9-1): see `RabbitTransport` and docs/delivery-semantics.md. */
export interface RabbitBrokerConfig {
  readonly kind: typeof BrokerKind.RabbitMQ;
  /**
   * `amqp://user:password@host:port/vhost` (or `amqps://`). Without a `heartbeat` query parameter the
   * runner asks for 15 s heartbeats, so a broker that went away unannounced is noticed within ~30 s.
   */
  readonly url: string;
  /**
   * The topology was declared by `provisionRabbit` and the URL's user is the service's own identity
   * (named like the service): the transport only checks exchanges and queues (`RabbitTransport`'s
   * `provisioned` mode) and names its private queues after the service. Default false: the user may
   * declare everything itself.
   */
  readonly provisioned?: boolean;
}

/** Which broker a service connects to, and how. Only the composition root (`main.ts`) picks it. */
export type BrokerConfig = NatsBrokerConfig | RabbitBrokerConfig;

/** The open NATS connection of a running service, for the composition root's NATS-only adapters. */
export interface NatsBrokerConnection {
  readonly kind: typeof BrokerKind.Nats;
  readonly nc: NatsConnection;
  readonly transport: NatsTransport;
  /** What the connected nats-server supports (checked at connect). */
  readonly features: ServerFeatures;
}

/** The open RabbitMQ connection of a running service. */
export interface RabbitBrokerConnection {
  readonly kind: typeof BrokerKind.RabbitMQ;
  readonly connection: ChannelModel;
  readonly transport: RabbitTransport;
}

/** The concrete connection behind a service's `Transport`; only `main.ts` (and tests) look at it. */
export type BrokerConnection = NatsBrokerConnection | RabbitBrokerConnection;

/** The connection of each broker kind. */
export interface BrokerConnections {
  readonly nats: NatsBrokerConnection;
  readonly rabbitmq: RabbitBrokerConnection;
}

/** The connection a broker of kind `K` yields (`ConnectionOf<'nats'>` is {@link NatsBrokerConnection}). */
export type ConnectionOf<K extends BrokerKind = BrokerKind> = BrokerConnections[K];

/**
 * A service was configured for a broker that some of its adapters do not support yet. Thrown by
 * {@link requireNatsBroker} in `main.ts`, before anything connects.
 */
export class BrokerUnsupportedError extends MessagingError {
  override name = 'BrokerUnsupportedError';
  constructor(
    readonly service: string,
    readonly broker: BrokerKind,
    /** What the service needs that the broker does not offer (yet), one item each. */
    readonly needs: readonly string[],
  ) {
    super(
      'BROKER_UNSUPPORTED',
      `${service} cannot run on ${broker === BrokerKind.RabbitMQ ? 'RabbitMQ' : broker} yet: ` +
        `${needs.join('; ')} ${needs.length === 1 ? 'is' : 'are'} only implemented on NATS (set BROKER=nats)`,
    );
  }
}

/**
 * `broker` when it is NATS; otherwise a {@link BrokerUnsupportedError} naming `needs`, the parts of
 * `service` that exist only on NATS so far (e.g. `'invoice PDF archive (JetStream object store)'`).
 */
export function requireNatsBroker(
  broker: BrokerConfig,
  service: string,
  needs: readonly string[],
): NatsBrokerConfig {
  if (broker.kind === BrokerKind.Nats) return broker;
  throw new BrokerUnsupportedError(service, broker.kind, needs);
}
