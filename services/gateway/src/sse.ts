import type { StatusChange, StatusChangeFeed } from './app.ts';

export interface StatusChangeStreamOptions {
  /** Which changes this client gets. */
  accept: (change: StatusChange) => boolean;
  /** A comment line this often keeps idle connections (and proxies) from timing out. */
  heartbeatMs: number;
  /** Reconnection delay the browser is told to use. */
  retryMs: number;
  /**
   * Events queued for a client that does not read; beyond, it is disconnected (an `EventSource`
   * reconnects and the page reloads what it shows) instead of the gateway buffering without bound.
   */
  maxQueuedEvents: number;
  /** Called once when the stream ends, whoever ends it (client, feed, or the slow-reader cut). */
  onClose?: () => void;
}

const encoder = new TextEncoder();

/**
 * A `text/event-stream` response (server-sent events) of the changes of `feed`: one
 * `event: status-changed` with the notification as JSON `data` per change, in the order the gateway
 * received them. Best effort, like the feed: nothing is replayed after a reconnection (no event ids).
 * The subscription ends when the client goes away or the feed closes.
 */
export function statusChangeStream(feed: StatusChangeFeed, options: StatusChangeStreamOptions): Response {
  let stop = (): void => undefined;
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let open = true;
        let unsubscribe = (): void => undefined;
        const heartbeat = setInterval(() => send(': keep-alive\n\n'), options.heartbeatMs);
        heartbeat.unref();
        const end = (closeStream: boolean) => {
          if (!open) return;
          open = false;
          clearInterval(heartbeat);
          unsubscribe();
          options.onClose?.();
          if (closeStream) controller.close();
        };
        const send = (text: string) => {
          if (!open) return;
          if ((controller.desiredSize ?? 1) <= 0) return end(true);
          controller.enqueue(encoder.encode(text));
        };
        stop = () => end(false);
        send(`retry: ${options.retryMs}\n: connected\n\n`);
        unsubscribe = feed.subscribe(
          (change) => {
            if (options.accept(change)) send(`event: status-changed\ndata: ${JSON.stringify(change)}\n\n`);
          },
          () => end(true),
        );
        // The feed may have ended during subscribe (it was closed already).
        if (!open) unsubscribe();
      },
      cancel() {
        stop();
      },
    },
    new CountQueuingStrategy({ highWaterMark: options.maxQueuedEvents }),
  );
  return new Response(body, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // Reverse proxies (nginx) would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    },
  });
}
