// The consumer runtime's Prometheus metrics, scraped from a running service's /metrics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { pino } from 'pino';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { ThingHappened } from '../src/conformance/transport.ts';
import { on, PermanentError, runService } from '../src/mod.ts';

let server: NatsServer;
before(async () => (server = await startNatsServer()));
after(() => server.dispose());

const sample = (text: string, name: string, labels: Record<string, string>): number | undefined => {
  const line = text
    .split('\n')
    .find(
      (l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
    );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};

test('dead letters are counted under the type of the message, whatever killed it', async () => {
  const stream = uniqueName('DLM');
  const service = await runService(
    {
      name: 'dl-metrics-test',
      version: '1.0.0',
      broker: { kind: 'nats', servers: server.url },
      handleSignals: false,
      logger: pino({ level: 'silent' }),
      streams: [{ name: stream, subjects: [`${stream}.>`] }],
    },
    async ({ transport }) => {
      await transport.consume({
        name: 'poisoned',
        stream,
        maxDeliver: 2,
        retry: { initialDelayMs: 10, maxDelayMs: 20 },
        handlers: [
          on(ThingHappened, async (event) => {
            if (event.data.key === 'permanent') throw new PermanentError('refused for good');
            throw new Error('always fails');
          }),
        ],
      });
    },
  );
  try {
    const { transport, nc } = service.broker;
    // 1. the handler refuses it for good; 2. it keeps failing until maxDeliver;
    await transport.publish(ThingHappened, { key: 'permanent', n: 1 }, { subject: `${stream}.a` });
    await transport.publish(ThingHappened, { key: 'retried', n: 2 }, { subject: `${stream}.b` });
    // 3. a foreign producer sends the type with a payload that breaks its schema (never decoded).
    const h = natsHeaders();
    for (const [name, value] of Object.entries({
      'ce-specversion': '1.0',
      'ce-id': 'bad-1',
      'ce-type': ThingHappened.type,
      'ce-source': 'foreign',
      'ce-datacontenttype': 'application/json',
    }))
      h.set(name, value);
    await transport.js.publish(`${stream}.c`, JSON.stringify({ key: 7 }), { headers: h });
    // 4. a type nobody declared: bounded label values, so it counts as `unknown`.
    h.set('ce-id', 'bad-2');
    h.set('ce-type', 'nobody.knows-me.v1');
    await transport.js.publish(`${stream}.d`, JSON.stringify({}), { headers: h });

    const scrape = async () => (await fetch(`http://127.0.0.1:${service.httpPort}/metrics`)).text();
    let last = '';
    const text = await waitFor(
      async () => {
        const t = await scrape();
        const typed = sample(t, 'orderflow_messages_dead_lettered_total', {
          consumer: 'poisoned',
          type: ThingHappened.type,
        });
        const unknown = sample(t, 'orderflow_messages_dead_lettered_total', {
          consumer: 'poisoned',
          type: 'unknown',
        });
        last = t;
        return typed === 3 && unknown === 1 ? t : undefined;
      },
      { timeoutMs: 15_000, message: 'three dead letters of the declared type and one unknown' },
    ).catch((error: unknown) => {
      throw new Error(
        `${(error as Error).message}\n${last
          .split('\n')
          .filter((l) => l.includes('consumer="poisoned"'))
          .join('\n')}`,
      );
    });
    assert.equal(
      sample(text, 'orderflow_messages_failed_total', { consumer: 'poisoned', type: ThingHappened.type }),
      4,
    );
    assert.ok(nc.isClosed() === false);
  } finally {
    await service.stop();
  }
});
