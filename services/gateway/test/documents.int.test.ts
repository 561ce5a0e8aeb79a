import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import {
  CreditNoteIssued,
  InvoiceCreated,
  orderingTopology,
  OrderPlaced,
  OwnerPublisher,
} from '@orderflow/contracts';
import {
  connectNats,
  runService,
  type PayloadOf,
  type RunningService,
  NatsBlobStores,
  NatsKeyValueStores,
} from '@orderflow/messaging';
import { KvStatusStore, startOrderStatus } from '@orderflow/order-status';
import { startNatsServer, uniqueName, waitFor, type NatsServer } from '@orderflow/testing';
import { pino } from 'pino';
import { createGateway, listen, ObjectStoreInvoices } from '../src/mod.ts';
import { testAuth, type TestAuth } from './auth-support.ts';

// The document routes over real HTTP: a real nats-server, order-status in process (the view names the
// documents), PDFs in a real JetStream object store as create-invoice writes them.
const topology = orderingTopology({ namespace: uniqueName('gwdocs') });
let nats: NatsServer;
const services: RunningService[] = [];
let base: string;
let closeHttp: (() => Promise<void>) | undefined;
let client: OwnerPublisher;
let clientNc: NatsConnection;
let closeClient: () => Promise<void>;

let auth: TestAuth;
let operator: Record<string, string>;
/** GET as an operator (who may read every order's documents). */
const get = (path: string) => fetch(`${base}${path}`, { headers: operator });

before(async () => {
  auth = await testAuth();
  operator = await auth.operator();
  nats = await startNatsServer();
  const common = {
    version: '0.1.0',
    broker: { kind: 'nats' as const, servers: nats.url },
    streams: topology.streams,
    handleSignals: false,
    logger: pino({ level: 'silent' }),
  };
  services.push(
    await runService({ ...common, name: 'order-status' }, async (context) => {
      const store = await KvStatusStore.open(
        new NatsKeyValueStores(context.broker.nc),
        topology.kv.orderStatus,
      );
      await startOrderStatus(context, { topology, store, broadcaster: context.transport });
    }),
    await runService({ ...common, name: 'gateway' }, async (context) => {
      const app = createGateway({
        topology,
        requester: context.transport,
        invoices: new ObjectStoreInvoices(
          new NatsBlobStores(context.broker.nc),
          topology.objectStores.invoices,
        ),
        authenticator: auth.authenticator,
        tokens: auth.issuer,
      });
      const server = await listen(app, { port: 0 });
      base = `http://127.0.0.1:${server.port}`;
      closeHttp = () => server.close();
    }),
  );
  const { nc } = await connectNats({ servers: nats.url, name: 'gateway-documents-test' });
  clientNc = nc;
  client = new OwnerPublisher(nc); // publishes each event as its producing service
  closeClient = async () => {
    await client.close();
    await nc.close();
  };
});
after(async () => {
  await closeHttp?.();
  for (const service of services.reverse()) await service.stop();
  await closeClient?.();
  await nats?.dispose();
  await auth?.dispose();
});

const now = () => new Date().toISOString();
const total = { amount: 2500, currency: 'EUR' as const };

async function placeOrder(orderId: string): Promise<void> {
  const placed: PayloadOf<typeof OrderPlaced> = {
    orderId,
    customer: { customerId: randomUUID(), email: 'ada@example.test', name: 'Ada' },
    lines: [{ sku: 'SKU-1', quantity: 1, unitPrice: 2500, lineTotal: 2500 }],
    currency: 'EUR',
    total: 2500,
    shippingAddress: { line1: 'Main St 1', city: 'McMurdo', postalCode: '0000', country: 'AQ' },
    placedAt: now(),
  };
  await client.publish(OrderPlaced, placed, { subject: topology.subjects.order(orderId), about: orderId });
}

test('GET /orders/:id/credit-note.pdf: the PDF of a credited order; 404 problem+json without one', async () => {
  const objects = await new Objm(clientNc).create(topology.objectStores.invoices);
  const credited = randomUUID();
  const invoiced = randomUUID();
  const invoiceNumber = '2026-000011';
  const creditNoteNumber = 'CN-2026-000004';
  const pdfBytes = new TextEncoder().encode(`%PDF-1.3 credit note ${creditNoteNumber}`);
  const creditNotePdf = topology.objectStores.creditNotePdf(creditNoteNumber);
  await objects.putBlob({ name: creditNotePdf }, pdfBytes);
  for (const orderId of [credited, invoiced]) {
    await placeOrder(orderId);
    await client.publish(
      InvoiceCreated,
      {
        orderId,
        invoiceNumber,
        year: 2026,
        sequence: 11,
        total,
        pdf: { bucket: topology.objectStores.invoices, name: 'invoice-x.pdf', size: 1 },
        issuedAt: now(),
      },
      { subject: topology.subjects.invoice(orderId), about: orderId },
    );
  }
  await client.publish(
    CreditNoteIssued,
    {
      orderId: credited,
      creditNoteNumber,
      year: 2026,
      sequence: 4,
      invoiceNumber,
      total,
      reason: 'delivery_unavailable',
      refundId: 're_1',
      pdf: { bucket: topology.objectStores.invoices, name: creditNotePdf, size: pdfBytes.length },
      issuedAt: now(),
    },
    { subject: topology.subjects.invoice(credited), about: credited },
  );

  const view = await waitFor(async () => {
    const response = await get(`/orders/${credited}`);
    const body =
      response.status === 200 ? ((await response.json()) as { creditNoteNumber: string | null }) : undefined;
    return body?.creditNoteNumber ? body : undefined;
  });
  assert.equal(view.creditNoteNumber, creditNoteNumber);

  const pdf = await get(`/orders/${credited}/credit-note.pdf`);
  assert.equal(pdf.status, 200);
  assert.equal(pdf.headers.get('content-type'), 'application/pdf');
  assert.match(pdf.headers.get('content-disposition') ?? '', new RegExp(creditNotePdf));
  assert.deepEqual(new Uint8Array(await pdf.arrayBuffer()), pdfBytes);

  // An order with an invoice and no credit note, and an unknown order: problem+json.
  await waitFor(async () => (await get(`/orders/${invoiced}`)).status === 200);
  const none = await get(`/orders/${invoiced}/credit-note.pdf`);
  assert.equal(none.status, 404);
  assert.match(none.headers.get('content-type') ?? '', /application\/problem\+json/);
  assert.equal(((await none.json()) as { code: string }).code, 'CREDIT_NOTE_NOT_FOUND');
  const unknown = await get(`/orders/${randomUUID()}/credit-note.pdf`);
  assert.equal(unknown.status, 404);
  assert.equal(((await unknown.json()) as { code: string }).code, 'ORDER_NOT_FOUND');
  const badId = await get(`/orders/a.b/credit-note.pdf`);
  assert.equal(badId.status, 400);
});
