import type { JetStreamManager } from '@nats-io/jetstream';
import { errors, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { ProvisioningError } from '../errors.ts';
import { ensureConsumer, type ConsumerDeclaration, type EnsureConsumer } from '../topology.ts';

/** Subjects of the provisioning requests: one per identity, so the subject says who asks. */
export const ProvisioningTopology = {
  subject: (identity: string) => `orderflow.provision.${identity}`,
  queue: 'provisioner',
} as const;

/** A consumer an identity may have (re)created: its name, stream and filter; tuning is the caller's. */
export interface ConsumerGrant {
  readonly stream: string;
  readonly name: string;
  readonly filterSubject?: string;
}

/** Bounds the provisioner keeps a caller's tuning in (so no one starves a stream by a giant ack wait). */
const LIMITS = {
  ackWaitMs: [1_000, 3_600_000],
  maxDeliver: [1, 1_000],
  maxAckPending: [1, 100_000],
} as const;

type Reply = { ok: true } | { ok: false; error: string };

function noResponders(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++)
    if (e instanceof errors.NoRespondersError) return true;
  return false;
}

/**
 * Who creates durables under per-identity permissions: a service may not, so it asks the provisioning
 * identity, which creates only what was declared for it (see {@link ProvisioningResponder}).
 * Asks the provisioning responder to create or update a consumer of this identity. With no responder
 * running (the durables were provisioned beforehand by `orderflow provision`), a durable that exists
 * is bound as it is.
 */
export class RemoteProvisioner {
  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly subject: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /** An {@link EnsureConsumer} for `NatsTransportOptions.ensureConsumer`. */
  readonly ensureConsumer: EnsureConsumer = (decl) => this.#ensure(decl);

  async #ensure(decl: ConsumerDeclaration): Promise<void> {
    let reply: Reply;
    try {
      const msg = await this.nc.request(this.subject, JSON.stringify(decl), { timeout: this.timeoutMs });
      reply = msg.json<Reply>();
    } catch (cause) {
      if (noResponders(cause) && (await this.#exists(decl))) return;
      throw new ProvisioningError(
        decl.stream,
        `consumer ${decl.name}: the provisioner on ${this.subject} did not answer: ${(cause as Error).message}`,
        { cause, consumer: decl.name },
      );
    }
    if (!reply.ok) throw new ProvisioningError(decl.stream, reply.error, { consumer: decl.name });
  }

  async #exists(decl: ConsumerDeclaration): Promise<boolean> {
    try {
      await this.jsm.consumers.info(decl.stream, decl.name);
      return true;
    } catch {
      return false;
    }
  }
}

function check(decl: ConsumerDeclaration, grants: readonly ConsumerGrant[]): string | undefined {
  const grant = grants.find((g) => g.stream === decl.stream && g.name === decl.name);
  if (!grant) return `consumer ${decl.stream}/${decl.name} is not declared for this identity`;
  if ((grant.filterSubject ?? '') !== (decl.filterSubject ?? ''))
    return `consumer ${decl.name}: filter must be "${grant.filterSubject ?? ''}"`;
  for (const [key, [min, max]] of Object.entries(LIMITS) as [
    keyof typeof LIMITS,
    readonly [number, number],
  ][]) {
    const value = decl[key];
    if (!Number.isInteger(value) || value < min || value > max)
      return `consumer ${decl.name}: ${key} must be in ${min}..${max}`;
  }
  if (decl.deliverPolicy !== undefined && decl.deliverPolicy !== 'all' && decl.deliverPolicy !== 'new')
    return `consumer ${decl.name}: deliverPolicy must be all or new`;
  return undefined;
}

/**
 * Answers provisioning requests with the provisioning identity's rights: for the identity a subject
 * belongs to, (re)creates only the consumers granted to it (name, stream and filter fixed; tuning in
 * bounds). Permissions let each identity publish only on its own subject, so the subject proves who asks.
 */
export class ProvisioningResponder {
  readonly #subscriptions: Subscription[] = [];

  constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    grants: ReadonlyMap<string, readonly ConsumerGrant[]>,
    options: { onError?: (error: unknown, identity: string) => void } = {},
  ) {
    for (const [identity, allowed] of grants) {
      this.#subscriptions.push(
        nc.subscribe(ProvisioningTopology.subject(identity), {
          queue: ProvisioningTopology.queue,
          callback: (_error, msg) => {
            void (async (): Promise<Reply> => {
              let decl: ConsumerDeclaration;
              try {
                decl = msg.json<ConsumerDeclaration>();
              } catch {
                return { ok: false, error: 'not a JSON consumer declaration' };
              }
              const problem = check(decl, allowed);
              if (problem) return { ok: false, error: problem };
              try {
                await ensureConsumer(jsm, {
                  stream: decl.stream,
                  name: decl.name,
                  ackWaitMs: decl.ackWaitMs,
                  maxDeliver: decl.maxDeliver,
                  maxAckPending: decl.maxAckPending,
                  ...(decl.filterSubject !== undefined && { filterSubject: decl.filterSubject }),
                  ...(decl.deliverPolicy !== undefined && { deliverPolicy: decl.deliverPolicy }),
                });
                return { ok: true };
              } catch (error) {
                options.onError?.(error, identity);
                return { ok: false, error: (error as Error).message };
              }
            })().then((reply) => msg.respond(JSON.stringify(reply)));
          },
        }),
      );
    }
  }

  stop(): void {
    for (const s of this.#subscriptions) s.unsubscribe();
  }
}
