import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import {
  EVENT_SOURCE_OWNERS,
  OrderingTopology,
  orderingBusIdentities,
  type EventSource,
} from '@orderflow/contracts';
import { busPermissions, DeadLetterTopology } from '@orderflow/messaging';
import { permissionsTable } from './bus.ts';

/** A Markdown table's cells, trimmed (Prettier pads them). */
const cells = (table: string): string[][] =>
  table
    .trim()
    .split('\n')
    .filter((line) => !/^\|\s*-/.test(line))
    .map((line) =>
      line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );

test('docs/security.md holds the permissions table generated from the topology', async () => {
  const doc = await readFile(new URL('../docs/security.md', import.meta.url), 'utf8');
  const committed = /<!-- bus-permissions:start -->\n([\s\S]*?)<!-- bus-permissions:end -->/.exec(doc)?.[1];
  assert.ok(committed, 'the markers are there');
  assert.deepEqual(
    cells(committed),
    cells(permissionsTable(OrderingTopology)),
    'regenerate it: npm run orderflow -- bus permissions',
  );
});

const permissions = busPermissions(orderingBusIdentities(OrderingTopology, { chaos: true }));
const allow = (identity: string, side: 'publish' | 'subscribe') => permissions.get(identity)![side].allow;

test('each event namespace is published by its owner only (and the chaos harness)', () => {
  for (const [source, owner] of Object.entries(EVENT_SOURCE_OWNERS)) {
    const subject = OrderingTopology.filters[source as EventSource];
    const publishers = [...permissions].filter(([, p]) => p.publish.allow.includes(subject)).map(([n]) => n);
    assert.deepEqual(publishers.sort(), [owner, 'chaos'].sort(), subject);
  }
});

test('only the provisioner holds the JetStream API; services get no create/update/delete of streams or durables', () => {
  for (const [name, p] of permissions) {
    const wide = p.publish.allow.filter(
      (s) => s === '$JS.API.>' || /STREAM\.(CREATE|UPDATE|DELETE|PURGE)/.test(s),
    );
    assert.deepEqual(wide, name === 'provisioner' ? ['$JS.API.>'] : [], name);
    if (name === 'provisioner') continue;
    assert.ok(!p.publish.allow.some((s) => s.includes('CONSUMER.DURABLE.CREATE')), name);
  }
});

test('an endpoint is subscribed only by its server, only in its queue group; the gateway requests (and redrives for the console)', () => {
  for (const endpoint of Object.values(OrderingTopology.endpoints)) {
    const subscribers = [...permissions]
      .filter(([, p]) => p.subscribe.allow.some((s) => s.split(' ')[0] === endpoint.subject))
      .map(([n, p]) => `${n}: ${p.subscribe.allow.filter((s) => s.startsWith(endpoint.subject)).join()}`);
    assert.equal(subscribers.length, 1, `${endpoint.subject}: ${subscribers.join('; ')}`);
    assert.match(subscribers[0]!, / q$/);
  }
  // Every endpoint but the payment token's, which only payment-processor may ask for; and, for the
  // operations console, `$SRV` discovery and dead-letter redrives (no event subject).
  const { getPaymentToken } = OrderingTopology.endpoints;
  assert.deepEqual(
    allow('gateway', 'publish').filter((s) => !s.startsWith('$JS.API.')),
    [
      ...Object.values(OrderingTopology.endpoints)
        .filter((e) => e !== getPaymentToken)
        .map((e) => e.subject),
      '$SRV.>',
      DeadLetterTopology.redriveSubject('*', '*'),
    ].sort(),
  );
  assert.deepEqual(
    [...permissions]
      .filter(([, p]) => p.publish.allow.includes(getPaymentToken.subject))
      .map(([name]) => name),
    ['payment-processor'],
  );
});

test('every identity reads only its own inbox', () => {
  for (const [name, p] of permissions) {
    const inboxes = p.subscribe.allow.filter((s) => s.startsWith('_INBOX'));
    assert.deepEqual(inboxes, [`_INBOX_${name}.>`], name);
  }
});

test('an identity that reads durables holds its reply grant for 2 s, the others for the server default of 2 min', () => {
  const grants = Object.fromEntries(
    [...permissions].map(([name, p]) => [name, p.allow_responses ? p.allow_responses.expires : 'none']),
  );
  assert.deepEqual(grants, {
    gateway: '2m',
    'order-storage': '2s',
    'order-status': '2s',
    'payment-processor': '2s',
    'create-invoice': '2s',
    'assign-delivery': '2s',
    'email-notify': '2s',
    provisioner: '2m',
    operator: 'none',
    chaos: 'none',
  });
});
