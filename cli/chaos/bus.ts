import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ChannelModel } from 'amqplib';
import { OrderStatusChanged, type OrderingTopology } from '@orderflow/contracts';
import {
  connectRabbit,
  NatsTransport,
  RabbitTransport,
  type DeadLetter,
  type PayloadOf,
  type Transport,
} from '@orderflow/messaging';
import { publishPoison, publishPoisonRabbit, type PoisonMessage } from './poison.ts';

/**
 * The harness's own side of the bus, as the `chaos` identity, on either broker: the toolkit's
 * transport port for what the services also use (dead letters, status notifications), the raw
 * client for what no service may do (poison), and the broker's record of refused operations.
 */

export type ChaosBroker = 'nats' | 'rabbitmq';

export type StatusChange = PayloadOf<typeof OrderStatusChanged>;

export interface ChaosBus {
  readonly broker: ChaosBroker;
  /** Every dead letter of `stream`, from the transport's dead-letter store. */
  deadLetters(stream: string): Promise<DeadLetter[]>;
  /**
   * `onChange` gets every `order.status-changed` notification from now on: best effort (fan-out), so a
   * notification sent while the harness was disconnected is missed.
   */
  followStatus(onChange: (change: StatusChange) => void): void;
  /** One poison message of every kind on every subject namespace, raw into the order log. */
  publishPoison(): Promise<PoisonMessage[]>;
  /** What the broker logged about operations of the system's identities it refused. */
  permissionViolations(): Promise<readonly string[]>;
  close(): Promise<void>;
}

const SOURCE = 'orderflow/chaos';
/** How long the RabbitMQ bus keeps trying to connect again (a broker restart takes seconds). */
const RECONNECT_TIMEOUT_MS = 120_000;
const IDENTITY = 'chaos';

/** On NATS: one connection that reconnects by itself; violations from the nats-server log(s). */
export async function natsChaosBus(
  nc: NatsConnection,
  topology: OrderingTopology,
  violations: () => readonly string[],
): Promise<ChaosBus> {
  const transport: Transport = await NatsTransport.create(nc, { source: SOURCE });
  return {
    broker: 'nats',
    deadLetters: (stream) => transport.deadLetters.list({ stream, limit: 100_000 }),
    followStatus: (onChange) =>
      void transport.listen(OrderStatusChanged, topology.notifications.statusChangedAll, (event) =>
        onChange(event.data),
      ),
    publishPoison: () => publishPoison(nc, topology),
    permissionViolations: async () => violations(),
    close: async () => {
      await transport.close();
      await nc.close();
    },
  };
}

interface RabbitSession {
  readonly connection: ChannelModel;
  readonly transport: Transport;
  /** The followers listening on this connection. */
  readonly following: Set<(change: StatusChange) => void>;
}

/**
 * On RabbitMQ: a connection is not reopened by amqplib, and a broker restart closes it; the bus opens
 * a new one (and listens again) as soon as the broker takes it, and waits for it where it needs one.
 */
class RabbitChaosBus implements ChaosBus {
  readonly broker = 'rabbitmq';
  readonly #followers: ((change: StatusChange) => void)[] = [];
  #session: Promise<RabbitSession>;
  #closed = false;

  constructor(
    private readonly url: string,
    private readonly topology: OrderingTopology,
    private readonly violations: () => Promise<readonly string[]>,
  ) {
    this.#session = this.#open();
  }

  /**
   * Connects as `chaos`, retrying while the broker is down or still recovering its queues, for up to
   * {@link RECONNECT_TIMEOUT_MS}.
   */
  async #open(): Promise<RabbitSession> {
    const deadline = Date.now() + RECONNECT_TIMEOUT_MS;
    for (let delayMs = 250; ; delayMs = Math.min(delayMs * 2, 2_000)) {
      if (this.#closed) throw new Error('the chaos bus is closed');
      let connection: ChannelModel | undefined;
      try {
        connection = await connectRabbit({
          url: this.url,
          name: 'orderflow-chaos',
          waitOnFirstConnect: false,
        });
        connection.on('error', () => undefined); // 'close' follows, and reopens
        const transport = await RabbitTransport.create(connection, {
          source: SOURCE,
          identity: IDENTITY,
          provisioned: true,
        });
        const session: RabbitSession = { connection, transport, following: new Set() };
        for (const follower of this.#followers) this.#listen(session, follower);
        connection.once('close', () => {
          if (!this.#closed) this.#session = this.#open();
        });
        return session;
      } catch (error) {
        await connection?.close().catch(() => undefined);
        if (Date.now() > deadline) throw error;
        await sleep(delayMs);
      }
    }
  }

  #listen(session: RabbitSession, onChange: (change: StatusChange) => void): void {
    if (session.following.has(onChange)) return;
    session.following.add(onChange);
    session.transport.listen(OrderStatusChanged, this.topology.notifications.statusChangedAll, (event) =>
      onChange(event.data),
    );
  }

  async deadLetters(stream: string): Promise<DeadLetter[]> {
    const { transport } = await this.#session;
    return transport.deadLetters.list({ stream, limit: 100_000 });
  }

  followStatus(onChange: (change: StatusChange) => void): void {
    this.#followers.push(onChange);
    void this.#session.then(
      (session) => this.#listen(session, onChange),
      () => undefined,
    );
  }

  async publishPoison(): Promise<PoisonMessage[]> {
    const { connection } = await this.#session;
    return publishPoisonRabbit(connection, this.topology);
  }

  permissionViolations(): Promise<readonly string[]> {
    return this.violations();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const session = await this.#session.catch(() => undefined);
    if (!session) return;
    await session.transport.close();
    await session.connection.close().catch(() => undefined);
  }
}

/**
 * On RabbitMQ, as the `chaos` user of `url` (`amqp://chaos-user:password@host/vhost`); `violations`
 * reads the refusals (the node's log, see `RabbitRefusalLog`).
 */
export async function rabbitChaosBus(
  url: string,
  topology: OrderingTopology,
  violations: () => Promise<readonly string[]>,
): Promise<ChaosBus> {
  const bus = new RabbitChaosBus(url, topology, violations);
  await bus.deadLetters(topology.stream); // connected, and the dead-letter queue readable
  return bus;
}
