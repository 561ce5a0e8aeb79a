import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { Type } from '@sinclair/typebox';
import {
  connectNats,
  defineEvent,
  NatsTransport,
  on,
  subjectMatches,
  type Middleware,
  type ProducerDeclaration,
} from '../src/mod.ts';

// Real nats-server. Two producers own one subject namespace each of one stream; consumers declare them.
const Paid = defineEvent({ name: 'test.paid', schema: Type.Object({ key: Type.String() }) });
const Shipped = defineEvent({ name: 'test.shipped', schema: Type.Object({ key: Type.String() }) });

/** An inbox in the consumer's own middleware: skips (acks) an event whose `ce-id` it saw handled. */
function inbox(seen: Set<string>): Middleware {
  return (next) => async (delivery) => {
    const id = delivery.envelope?.id;
    if (id !== undefined && seen.has(id)) return delivery.ack();
    await next(delivery);
    if (id !== undefined) seen.add(id);
  };
}

let server: NatsServer;
let nc: NatsConnection;
let payments: NatsTransport;
let shipping: NatsTransport;
before(async () => {
  server = await startNatsServer();
  ({ nc } = await connectNats({ servers: server.url, name: 'producers' }));
  payments = await NatsTransport.create(nc, { source: 'orderflow/payments' });
  shipping = await NatsTransport.create(nc, { source: 'orderflow/shipping' });
});
after(async () => {
  await payments.close();
  await shipping.close();
  await nc.close();
  await server.dispose();
});

async function stream(): Promise<{ name: string; producers: ProducerDeclaration[] }> {
  const name = uniqueName('PROD');
  await payments.provision([{ name, subjects: [`${name}.pay.*`, `${name}.ship.*`, `${name}.other.*`] }]);
  return {
    name,
    producers: [
      { subjects: `${name}.pay.*`, source: 'orderflow/payments', types: [Paid.type] },
      { subjects: `${name}.ship.*`, source: 'orderflow/shipping', types: [Shipped.type] },
    ],
  };
}

test('subject patterns match as NATS does', () => {
  assert.ok(subjectMatches('a.*', 'a.b'));
  assert.ok(!subjectMatches('a.*', 'a.b.c'));
  assert.ok(!subjectMatches('a.*', 'a'));
  assert.ok(subjectMatches('a.>', 'a.b.c'));
  assert.ok(!subjectMatches('a.>', 'a'));
  assert.ok(subjectMatches('ns.a.*', 'ns.a.x'));
  assert.ok(!subjectMatches('ns.a.*', 'ns.b.x'));
});

describe('consumers check the producer', () => {
  test('an event whose ce-source is not the owner of its subject is dead-lettered with UNEXPECTED_PRODUCER', async () => {
    const { name, producers } = await stream();
    const handled: string[] = [];
    const consumer = uniqueName('checked');
    await payments.consume({
      name: consumer,
      stream: name,
      producers,
      handlers: [
        on(Paid, async (e) => void handled.push(`paid:${e.data.key}`)),
        on(Shipped, async (e) => void handled.push(`shipped:${e.data.key}`)),
      ],
    });
    // Forged: shipping claims a payment on the payments subject, and on its own subject; a payment on
    // a subject nobody owns. Genuine: one event of each owner.
    await shipping.publish(Paid, { key: 'forged-source' }, { subject: `${name}.pay.o1` });
    await shipping.publish(Paid, { key: 'wrong-type' }, { subject: `${name}.ship.o1` });
    await payments.publish(Paid, { key: 'no-owner' }, { subject: `${name}.other.o1` });
    await payments.publish(Paid, { key: 'real' }, { subject: `${name}.pay.o1` });
    await shipping.publish(Shipped, { key: 'real' }, { subject: `${name}.ship.o1` });

    const letters = await waitFor(async () => {
      const list = await payments.deadLetters.list({ stream: name, consumer });
      return list.length === 3 ? list : undefined;
    });
    await waitFor(() => handled.length === 2);
    assert.deepEqual(handled.sort(), ['paid:real', 'shipped:real']);
    assert.deepEqual(
      letters.map((l) => l.code),
      ['UNEXPECTED_PRODUCER', 'UNEXPECTED_PRODUCER', 'UNEXPECTED_PRODUCER'],
    );
    assert.match(letters[0]!.reason, /ce-source orderflow\/shipping is not the owner/);
    assert.match(letters[1]!.reason, /test\.paid\.v1 is not an event of/);
    assert.match(letters[2]!.reason, /no producer is declared/);
  });

  test("a forged event never reaches the consumer's own middleware (an inbox), so the real one with its id is still handled", async () => {
    const { name, producers } = await stream();
    const seen = new Set<string>();
    const { nc: nc2 } = await connectNats({ servers: server.url, name: 'producers-inbox' });
    const transport = await NatsTransport.create(nc2, { source: 'orderflow/reader' });
    try {
      const handled: string[] = [];
      await transport.consume({
        name: uniqueName('inbox'),
        stream: name,
        producers,
        middleware: [inbox(seen)],
        handlers: [on(Paid, async (e) => void handled.push(e.data.key))],
      });
      // Different Nats-Msg-Ids (different subjects' retries are not the point here), same ce-id.
      await shipping.publish(Paid, { key: 'forged' }, { subject: `${name}.pay.o2`, id: 'paid:o2' });
      await payments.publish(Paid, { key: 'real' }, { subject: `${name}.pay.o2`, id: 'paid:o2' });
      await waitFor(() => handled.length > 0);
      assert.deepEqual(handled, ['real']);
    } finally {
      await transport.close();
      await nc2.close();
    }
  });

  test('structured mode is checked the same way: the source inside the body must own the subject', async () => {
    const { name, producers } = await stream();
    const handled: string[] = [];
    const consumer = uniqueName('structured');
    await payments.consume({
      name: consumer,
      stream: name,
      producers,
      handlers: [on(Paid, async (e) => void handled.push(e.data.key))],
    });
    const js = jetstream(nc);
    const structured = (id: string, source: string, key: string) => {
      const h = headers();
      h.set('content-type', 'application/cloudevents+json');
      h.set('Nats-Msg-Id', id);
      const body = {
        specversion: '1.0',
        id,
        type: Paid.type,
        source,
        datacontenttype: 'application/json',
        data: { key },
      };
      return { h, body: JSON.stringify(body) };
    };
    const forged = structured('s-1', 'orderflow/shipping', 'forged');
    await js.publish(`${name}.pay.o7`, forged.body, { headers: forged.h });
    const real = structured('s-2', 'orderflow/payments', 'real');
    await js.publish(`${name}.pay.o7`, real.body, { headers: real.h });
    const [letter] = await waitFor(async () => {
      const list = await payments.deadLetters.list({ stream: name, consumer });
      return list.length > 0 ? list : undefined;
    });
    await waitFor(() => handled.length === 1);
    assert.deepEqual(handled, ['real']);
    assert.equal(letter?.code, 'UNEXPECTED_PRODUCER');
    assert.match(letter?.reason ?? '', /ce-source orderflow\/shipping is not the owner/);
  });

  test('without producers declared nothing is checked (the toolkit default)', async () => {
    const { name } = await stream();
    const handled: string[] = [];
    await payments.consume({
      name: uniqueName('unchecked'),
      stream: name,
      handlers: [on(Paid, async (e) => void handled.push(e.data.key))],
    });
    await shipping.publish(Paid, { key: 'anyone' }, { subject: `${name}.pay.o3` });
    await waitFor(() => handled.length === 1);
  });
});

describe('message ids cannot be pre-empted by another producer', () => {
  test('a forged early publish with the real event id does not suppress the real event; a retried genuine publish is still de-duplicated', async () => {
    const { name, producers } = await stream();
    const jsm = await jetstreamManager(nc);
    const id = 'test.paid.v1:o4';
    // The impostor publishes first, on a subject it may write to, with the id the real event will use.
    const forged = await shipping.publish(Paid, { key: 'forged' }, { subject: `${name}.ship.o4`, id });
    assert.equal(forged.duplicate, false);

    const real = await payments.publish(Paid, { key: 'real' }, { subject: `${name}.pay.o4`, id });
    assert.equal(real.duplicate, false, 'the real event is stored, not dropped as a duplicate');
    assert.equal(real.preempted, true);
    assert.equal(real.id, id, 'ce-id unchanged');
    // Its retry (a lost ack, another replica) is de-duplicated against the real copy, not the forged one.
    const retried = await payments.publish(Paid, { key: 'real' }, { subject: `${name}.pay.o4`, id });
    assert.equal(retried.duplicate, true);
    assert.equal(retried.seq, real.seq);
    assert.equal((await jsm.streams.info(name)).state.messages, 2);

    // An impostor that also takes the fallback id cannot suppress it either: the event gets a fresh one.
    const id6 = 'test.paid.v1:o6';
    await shipping.publish(Paid, { key: 'forged' }, { subject: `${name}.ship.o6`, id: id6 });
    await shipping.publish(
      Paid,
      { key: 'forged' },
      { subject: `${name}.ship.o6`, id: `${id6}@orderflow/payments:${name}.pay.o6` },
    );
    const real6 = await payments.publish(Paid, { key: 'real6' }, { subject: `${name}.pay.o6`, id: id6 });
    assert.equal(real6.duplicate, false);
    assert.equal(real6.preempted, true);
    assert.equal((await jsm.streams.info(name)).state.messages, 5);

    // A genuine event published twice (a lost ack, a redelivered handler) is stored once.
    const first = await payments.publish(Paid, { key: 'once' }, { subject: `${name}.pay.o5`, id: 'p5' });
    const again = await payments.publish(Paid, { key: 'once' }, { subject: `${name}.pay.o5`, id: 'p5' });
    assert.equal(first.duplicate, false);
    assert.equal(again.duplicate, true);
    assert.equal(again.preempted, undefined);
    assert.equal(again.seq, first.seq);
    assert.equal((await jsm.streams.info(name)).state.messages, 6);

    // The consumer handles the real event (ce-id de-duplicates the retried one) and rejects the impostor.
    const handled: string[] = [];
    const consumer = uniqueName('preempt');
    const seen = new Set<string>();
    const { nc: nc2 } = await connectNats({ servers: server.url, name: 'producers-preempt' });
    const transport = await NatsTransport.create(nc2, { source: 'orderflow/reader' });
    try {
      await transport.consume({
        name: consumer,
        stream: name,
        producers,
        orderingKey: 'subject',
        middleware: [inbox(seen)],
        handlers: [on(Paid, async (e) => void handled.push(e.data.key))],
      });
      const letters = await waitFor(async () => {
        const list = await transport.deadLetters.list({ stream: name, consumer });
        return list.length === 3 ? list : undefined;
      });
      await waitFor(() => handled.length === 3);
      assert.deepEqual(handled.sort(), ['once', 'real', 'real6']);
      assert.deepEqual(
        letters.map((l) => l.code),
        ['UNEXPECTED_PRODUCER', 'UNEXPECTED_PRODUCER', 'UNEXPECTED_PRODUCER'],
      );
    } finally {
      await transport.close();
      await nc2.close();
    }
  });
});
