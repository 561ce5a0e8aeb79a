import { OrderStatusChanged } from '@orderflow/contracts';
import type { Broadcaster } from '@orderflow/messaging';
import type { StatusChange, StatusChangeFeed } from '../app.ts';

interface Subscriber {
  readonly listener: (change: StatusChange) => void;
  readonly onEnd: () => void;
}

/**
 * {@link StatusChangeFeed} over order-status's `order.status-changed` fan-out (core NATS, best effort).
 * One subscription serves every open event stream of this gateway: taken with the first subscriber
 * (a gateway nobody ever watched receives nothing) and kept until {@link close} — not dropped with the
 * last one, because `NatsTransport` keeps every listener it handed out until it closes.
 */
export class BroadcastStatusFeed implements StatusChangeFeed {
  readonly #subscribers = new Set<Subscriber>();
  #subscription: { unsubscribe(): void } | undefined;
  #closed = false;

  /** `subject`: the notification subject to listen on, e.g. `topology.notifications.statusChangedAll`. */
  constructor(
    private readonly broadcaster: Broadcaster,
    private readonly subject: string,
  ) {}

  subscribe(listener: (change: StatusChange) => void, onEnd: () => void): () => void {
    if (this.#closed) {
      onEnd();
      return () => undefined;
    }
    const subscriber = { listener, onEnd };
    this.#subscribers.add(subscriber);
    this.#subscription ??= this.broadcaster.listen(OrderStatusChanged, this.subject, (event) => {
      for (const s of this.#subscribers) s.listener(event.data);
    });
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  /** Ends every subscriber and takes no new ones (drain: open event streams finish at once). */
  close(): void {
    this.#closed = true;
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    const ending = [...this.#subscribers];
    this.#subscribers.clear();
    for (const s of ending) s.onEnd();
  }
}
