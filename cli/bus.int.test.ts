import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nkeyAuthenticator, nkeys, type NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { connect } from '@nats-io/transport-node';
import { orderingTopology, type BusIdentityName } from '@orderflow/contracts';
import {
  connectNats,
  DeadLetterTopology,
  ensureBusSecrets,
  NatsBlobStores,
  NatsTransport,
  ProvisioningTopology,
  readSeedFile,
  RemoteProvisioner,
  runService,
  type BusSecrets,
} from '@orderflow/messaging';
import { pino } from 'pino';
import { startNatsServer, waitFor, type NatsServer } from '@orderflow/testing';
import { busCredentials, busServerConfig, PERMISSION_VIOLATION, prepareBusSecrets } from './bus.ts';
import { traceOrder } from './commands/inspect.ts';
import { provisionOrdering, startProvisioningResponder } from './provision.ts';

const topology = orderingTopology();
let dir: string;
let secrets: BusSecrets;
let server: NatsServer;
const log: string[] = [];
const open: NatsConnection[] = [];
let provisioner: NatsConnection;

async function connectAs(identity: BusIdentityName): Promise<NatsConnection> {
  const credentials = busCredentials(secrets, identity);
  const { nc } = await connectNats({
    servers: server.url,
    name: identity,
    maxReconnectAttempts: 0,
    ...credentials,
  });
  open.push(nc);
  return nc;
}

/** The permission violations the server logged since `mark`. */
const violationsSince = (mark: number): string[] =>
  log.slice(mark).filter((l) => PERMISSION_VIOLATION.test(l));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orderflow-bus-'));
  secrets = await prepareBusSecrets(join(dir, 'secrets'), topology);
  server = await startNatsServer({
    config: ({ port, storeDir }) =>
      busServerConfig(secrets, topology, { serverName: 'bus-test', port, storeDir }),
    onLog: (line) => log.push(line),
  });
  provisioner = await connectAs('provisioner');
  await provisionOrdering(provisioner, topology);
  open.push(provisioner);
  await startProvisioningResponder(provisioner, topology);
});

after(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => undefined)));
  await server?.dispose();
  await rm(dir, { recursive: true, force: true });
});

test('secrets are private files, generated once and reused', async () => {
  for (const key of secrets.keys.values()) assert.equal((await stat(key.seedFile)).mode & 0o777, 0o600);
  assert.equal((await stat(secrets.tls!.keyFile)).mode & 0o777, 0o600);
  assert.equal((await stat(secrets.dir)).mode & 0o777, 0o700);
  const again = await prepareBusSecrets(secrets.dir, topology);
  assert.deepEqual(
    [...again.keys.values()].map((k) => k.publicKey),
    [...secrets.keys.values()].map((k) => k.publicKey),
  );
});

test('an anonymous client, an unknown nkey and a client that does not trust the CA are refused', async () => {
  const tls = { caFile: secrets.tls!.caFile };
  await assert.rejects(
    connect({ servers: server.url, tls, maxReconnectAttempts: 0 }),
    /Authorization Violation/i,
  );
  const stranger = nkeyAuthenticator(nkeys.createUser().getSeed());
  await assert.rejects(
    connect({ servers: server.url, tls, authenticator: stranger, maxReconnectAttempts: 0 }),
    /Authorization Violation/i,
  );
  const gateway = nkeyAuthenticator(await readSeedFile(secrets.keys.get('gateway')!.seedFile));
  const otherCa = await ensureBusSecrets(join(dir, 'other'), []);
  await assert.rejects(
    connect({
      servers: server.url,
      tls: { caFile: otherCa.tls!.caFile },
      authenticator: gateway,
      maxReconnectAttempts: 0,
    }),
  );
  const nc = await connect({ servers: server.url, tls, authenticator: gateway, maxReconnectAttempts: 0 });
  await nc.close();
});

test('payment-processor appends payments but cannot publish an order event', async () => {
  const mark = log.length;
  const js = jetstream(await connectAs('payment-processor'));
  const ack = await js.publish(topology.subjects.payment('o-1'), '{}');
  assert.ok(ack.seq > 0);
  await assert.rejects(js.publish(topology.subjects.order('o-1'), '{}', { timeout: 2_000 }));
  await waitFor(() => violationsSince(mark).some((l) => l.includes(topology.subjects.order('o-1'))));
});

test("email-notify cannot read another service's inbox or events it does not consume", async () => {
  const nc = await connectAs('email-notify');
  const mark = log.length;
  const inbox = nc.subscribe('_INBOX_gateway.>');
  const notifications = nc.subscribe(topology.notifications.statusChangedAll);
  const ended = await Promise.allSettled([inbox.closed, notifications.closed]);
  assert.ok(
    ended.every((r) => r.status === 'rejected' || r.value instanceof Error),
    'subscriptions refused',
  );
  await waitFor(() => violationsSince(mark).length >= 2);
});

test('services cannot delete or update streams or consumers', async () => {
  const nc = await connectAs('payment-processor');
  const jsm = await jetstreamManager(nc);
  // It binds to its durable through the provisioner (which creates only what is declared for it).
  const transport = await NatsTransport.create(nc, {
    source: 'orderflow/payment-processor',
    ensureConsumer: new RemoteProvisioner(nc, jsm, ProvisioningTopology.subject('payment-processor'))
      .ensureConsumer,
  });
  await transport.consume({ ...topology.consumers.paymentProcessor.orders, handlers: [] });
  await transport.close();
  const durable = topology.consumers.paymentProcessor.orders.name;
  await assert.rejects(jsm.streams.delete(topology.stream));
  await assert.rejects(jsm.streams.purge(topology.stream));
  const { config } = await jsm.streams.info(topology.stream);
  await assert.rejects(jsm.streams.update(topology.stream, { ...config, max_msgs: 1 }));
  await assert.rejects(jsm.consumers.delete(topology.stream, durable));
  await assert.rejects(jsm.consumers.update(topology.stream, durable, { max_ack_pending: 1 }));
  await assert.rejects(jsm.consumers.add(topology.stream, { durable_name: 'rogue', ack_policy: 'explicit' }));
  await assert.rejects(jsm.streams.deleteMessage(DeadLetterTopology.stream, 1));
  // The provisioner refuses what was not declared for the asking identity.
  const remote = new RemoteProvisioner(nc, jsm, ProvisioningTopology.subject('payment-processor'));
  const decl = { stream: topology.stream, ackWaitMs: 30_000, maxDeliver: 5, maxAckPending: 10 };
  await assert.rejects(
    remote.ensureConsumer({ ...decl, name: topology.consumers.emailNotify.all.name }),
    /not declared/,
  );
  await assert.rejects(
    remote.ensureConsumer({ ...decl, name: durable, filterSubject: topology.filters.deliveries }),
    /filter must be/,
  );
  // ... nor may it ask in another identity's name.
  await assert.rejects(
    new RemoteProvisioner(nc, jsm, ProvisioningTopology.subject('email-notify')).ensureConsumer({
      ...decl,
      name: topology.consumers.emailNotify.all.name,
    }),
  );
  const info = await provisionerJsm().then((p) => p.consumers.info(topology.stream, durable));
  assert.notEqual(info.config.max_ack_pending, 1);
});

test('a service reading through ordered consumers cannot touch other durables; the residual: new names', async () => {
  const nc = await connectAs('order-storage');
  const jsm = await jetstreamManager(nc);
  const ppOrders = topology.consumers.paymentProcessor.orders;
  await provisionerJsm().then((p) =>
    p.consumers.add(topology.stream, {
      durable_name: ppOrders.name,
      filter_subject: ppOrders.filterSubject!,
      ack_policy: 'explicit',
    }),
  );
  // Its ordered reads (event-store loads) work...
  const js = jetstream(nc);
  await js.publish(topology.subjects.order('o-2'), '{}');
  const ordered = await js.consumers.get(topology.stream, {
    filter_subjects: topology.subjects.order('o-2'),
  });
  assert.equal((await ordered.next({ expires: 2_000 }))?.subject, topology.subjects.order('o-2'));
  // ...but another service's durable cannot be updated, deleted or pulled from.
  await assert.rejects(jsm.consumers.update(topology.stream, ppOrders.name, { max_ack_pending: 1 }));
  await assert.rejects(jsm.consumers.delete(topology.stream, ppOrders.name));
  await assert.rejects(
    js.consumers.get(topology.stream, ppOrders.name).then((c) => c.next({ expires: 1_000 })),
  );
  // Nor can it read outside its filter.
  await assert.rejects(
    js.consumers
      .get(topology.stream, { filter_subjects: topology.filters.payments })
      .then((c) => c.next({ expires: 1_000 })),
  );
  // Residual risk (docs/security.md): CONSUMER.CREATE by any name lets it create a new durable on its filter.
  const rogue = await jsm.consumers.add(topology.stream, {
    durable_name: 'rogue-durable',
    filter_subject: topology.filters.orders,
    ack_policy: 'explicit',
  });
  assert.equal(rogue.config.durable_name, 'rogue-durable');
});

test('a foreign responder cannot join a service queue group', async () => {
  const mark = log.length;
  const intruder = await connectAs('email-notify');
  const sub = intruder.subscribe(topology.endpoints.placeOrder.subject, { queue: 'q' });
  await sub.closed.then(
    (error) => assert.ok(error instanceof Error),
    () => undefined,
  );
  const gateway = await connectAs('gateway');
  const sub2 = gateway.subscribe(topology.endpoints.placeOrder.subject, { queue: 'q' });
  await sub2.closed.then(
    (error) => assert.ok(error instanceof Error),
    () => undefined,
  );
  await waitFor(() => violationsSince(mark).length >= 2);
  // order-storage may, but only in its queue group.
  const owner = await connectAs('order-storage');
  const own = owner.subscribe(topology.endpoints.placeOrder.subject, { queue: 'q' });
  const plain = owner.subscribe(topology.endpoints.placeOrder.subject);
  await plain.closed.then(
    (error) => assert.ok(error instanceof Error),
    () => undefined,
  );
  await owner.flush();
  assert.equal(own.isClosed(), false);
});

test('KV and object store work for their owners and readers, and refuse the others', async () => {
  const status = await new Kvm(await connectAs('order-status')).open(topology.kv.orderStatus);
  await status.put('o-3', '{}');
  assert.equal((await status.get('o-3'))?.string(), '{}');
  await assert.rejects(
    new Kvm(await connectAs('payment-processor'))
      .open(topology.kv.orderStatus)
      .then((kv) => kv.put('o-3', 'x')),
  );
  // create-invoice's own blob store (not nats.js's putBlob, which purges what it replaces).
  const writer = await new NatsBlobStores(await connectAs('create-invoice')).open(
    topology.objectStores.invoices,
  );
  const mark = log.length;
  await writer.put('invoice-1.pdf', new Uint8Array([0]));
  // A second put of the name (a retry whose first ack was lost) replaces it without a purge.
  await writer.put('invoice-1.pdf', new Uint8Array([1, 2, 3]));
  const reader = await new Objm(await connectAs('gateway')).open(topology.objectStores.invoices);
  assert.deepEqual([...((await reader.getBlob('invoice-1.pdf')) ?? [])], [1, 2, 3]);
  assert.deepEqual(violationsSince(mark), [], 'the owner replaces its objects without a violation');
  await assert.rejects(reader.putBlob({ name: 'forged.pdf' }, new Uint8Array([9])));
});

async function provisionerJsm() {
  return jetstreamManager(provisioner);
}

test('$SRV discovery answers the operator; a service answers for its own name only', async () => {
  const nc = await connectAs('order-storage');
  const transport = await NatsTransport.create(nc, {
    source: 'orderflow/order-storage',
    service: { name: 'order-storage', version: '0.1.0' },
  });
  await nc.flush();
  const operator = await connectAs('operator');
  const ping = await operator.request('$SRV.PING.order-storage', '', { timeout: 5_000 });
  assert.equal(ping.json<{ name: string }>().name, 'order-storage');
  const mark = log.length;
  const impostor = await connectAs('email-notify');
  const sub = impostor.subscribe('$SRV.PING.order-storage');
  await sub.closed.then(
    (error) => assert.ok(error instanceof Error),
    () => undefined,
  );
  await waitFor(() => violationsSince(mark).length >= 1);
  await transport.close();
});

test('a service answers a request it received within its 2 s reply grant, and not after it', async () => {
  // The grant is short for identities that read durables (CONSUMER_REPLY_GRANT): nats-server keeps one
  // per delivered message for that long. Their endpoint replies go to their callers' inboxes instead.
  const service = await connectAs('email-notify');
  const answers: Promise<void>[] = [];
  const sub = service.subscribe('$SRV.PING.email-notify', {
    callback: (_error, msg) => {
      const delayMs = msg.string() === 'late' ? 2_500 : 0;
      answers.push(
        new Promise<void>((resolve) =>
          setTimeout(() => {
            msg.respond('pong');
            resolve();
          }, delayMs),
        ),
      );
    },
  });
  await service.flush();
  const operator = await connectAs('operator');
  const prompt = await operator.request('$SRV.PING.email-notify', 'now', { timeout: 5_000 });
  assert.equal(prompt.string(), 'pong');
  const mark = log.length;
  await assert.rejects(operator.request('$SRV.PING.email-notify', 'late', { timeout: 4_000 }));
  await Promise.all(answers);
  await waitFor(() => violationsSince(mark).some((line) => line.includes('_INBOX_operator')));
  sub.unsubscribe();
});

test('runService with an nkey binds its durables through the provisioner, without one violation', async () => {
  const mark = log.length;
  const credentials = busCredentials(secrets, 'payment-processor');
  const service = await runService(
    {
      name: 'payment-processor',
      version: '0.1.0',
      broker: {
        kind: 'nats',
        servers: server.url,
        auth: { nkeySeedFile: credentials.nkeySeedFile, caFile: credentials.caFile! },
      },
      streams: topology.streams,
      handleSignals: false,
      logger: pino({ level: 'silent' }),
    },
    async (context) => {
      await context.transport.consume({
        ...topology.consumers.paymentProcessor.orders,
        maxDeliver: 4,
        handlers: [],
      });
    },
  );
  await service.stop();
  const jsm = await provisionerJsm();
  const info = await jsm.consumers.info(topology.stream, topology.consumers.paymentProcessor.orders.name);
  assert.equal(info.config.max_deliver, 4 + 3, 'created with the tuning the service asked for');
  assert.deepEqual(violationsSince(mark), []);
});

test('the operator traces an order (stream message gets) without one permission violation', async () => {
  const orderId = `o-trace-${Date.now()}`;
  const js = jetstream(await connectAs('payment-processor'));
  await js.publish(topology.subjects.payment(orderId), '{}');
  const mark = log.length;
  const operator = await connectAs('operator');
  const entries = await traceOrder(operator, orderId, () => undefined, topology);
  assert.equal(entries.length, 1, 'the one message about the order');
  assert.match(entries[0]!.type, /not a CloudEvent/, 'a headerless message is shown as what it is');
  await operator.flush();
  assert.deepEqual(violationsSince(mark), []);
});
