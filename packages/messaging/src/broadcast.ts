import type { NatsConnection } from '@nats-io/nats-core';
import type { MessageContract, PayloadOf } from './contract.ts';
import { createEnvelope, decodeEnvelope, encodeData, envelopeHeaders, type Envelope } from './envelope.ts';
import type { Broadcaster } from './types.ts';

/**
 * Fan-out on core NATS: every current listener gets each notification; nothing is stored. Invalid
 * notifications are dropped by the listener (reported to `onInvalid`), never thrown at the sender.
 */
export class CoreBroadcaster implements Broadcaster {
  constructor(
    private readonly nc: NatsConnection,
    private readonly source: string,
    private readonly onInvalid: (error: unknown, subject: string) => void = () => undefined,
  ) {}

  broadcast<C extends MessageContract>(
    contract: C,
    data: PayloadOf<C>,
    options: { subject: string; causedBy?: Envelope },
  ): void {
    contract.parse(data);
    const envelope = createEnvelope({
      type: contract.type,
      source: this.source,
      data,
      ...(options.causedBy && { causedBy: options.causedBy }),
    });
    this.nc.publish(options.subject, encodeData(data), { headers: envelopeHeaders(envelope) });
  }

  listen<C extends MessageContract>(
    contract: C,
    subject: string,
    handler: (event: Envelope<PayloadOf<C>>) => void,
  ): { unsubscribe(): void } {
    const subscription = this.nc.subscribe(subject, {
      callback: (_error, msg) => {
        try {
          const envelope = decodeEnvelope(msg.headers, msg.data);
          if (envelope.type !== contract.type) return;
          contract.parse(envelope.data);
          handler(envelope as Envelope<PayloadOf<C>>);
        } catch (error) {
          this.onInvalid(error, msg.subject);
        }
      },
    });
    return { unsubscribe: () => subscription.unsubscribe() };
  }
}
