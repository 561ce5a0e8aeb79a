// The dashboard served by the gateway, in a real headless Chromium (Debian `chromium`, driven by
// playwright-core) against the whole system as processes: the page places orders by clicking and
// follows them to a terminal state through the gateway's server-sent events (GET /status-changes) —
// the page never polls, so a row that reaches `confirmed` was moved there by the live updates.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { OrderingTopology } from '@orderflow/contracts';
import { waitFor } from '@orderflow/testing';
import { publishPoison } from '../cli/chaos/poison.ts';
import { startTestSystem, type TestSystem } from './support/system.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOT = '/tmp/dashboard.png';
/** Time a row gets to reach its terminal state. */
const SETTLE_MS = 60_000;

describe('the dashboard in a headless Chromium, against the system', { timeout: 300_000 }, () => {
  let sys: TestSystem;
  let userDataDir: string;
  let browser: BrowserContext;
  let page: Page;
  /** What the page reported that it should not have: script errors, CSP violations, failed loads. */
  const pageErrors: string[] = [];
  const eventStreams: string[] = [];

  before(async () => {
    // Fails (does not skip): CI installs Chromium in .ci/run.
    assert.ok(
      existsSync(CHROMIUM),
      `Chromium is not installed at ${CHROMIUM}; the dashboard test needs it: apt-get install -y chromium`,
    );
    // The console test forges one poison event: it connects as the chaos harness's identity.
    sys = await startTestSystem({ chaosIdentity: true });
    userDataDir = await mkdtemp(join(tmpdir(), 'orderflow-chromium-'));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 860 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      // A 4xx is an answer the page handles (a bad field, an order order-status has not seen yet).
      if (message.type() === 'error' && !/status of 4\d\d/.test(message.text()))
        pageErrors.push(`console: ${message.text()}`);
    });
    page.on('response', (response) => {
      if (new URL(response.url()).pathname === '/status-changes')
        eventStreams.push(`${response.status()} ${response.headers()['content-type'] ?? ''}`);
    });
    await page.goto(`${sys.system.apiUrl}/`);
    // No customer yet, so no token and no event stream: the first order signs up.
    await page.waitForSelector('#live[data-state="idle"]', { timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
    await sys?.dispose();
  });

  const rows = () => page.locator('#orders tbody tr');
  const row = (orderId: string) => page.locator(`#orders tbody tr[data-order-id="${orderId}"]`);
  const cells = async (orderId: string) => row(orderId).locator('td').allTextContents();

  /** Clicks "Place order" and returns the id of the row it added. */
  async function placeByClick(options: { token?: string; country?: string } = {}): Promise<string> {
    await page.selectOption('select[name="token"]', options.token ?? 'tok_visa');
    await page.selectOption('select[name="country"]', options.country ?? 'DE');
    const before = await rows().count();
    await page.click('#place');
    // Rows are added on top: the one at index `before` exists once there is one more.
    await rows().nth(before).waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#form-error').isVisible(), false, await page.innerText('#form-error'));
    const orderId = await rows().first().getAttribute('data-order-id');
    assert.ok(orderId, 'the new row names its order');
    return orderId;
  }

  async function waitStatus(orderId: string, status: string): Promise<void> {
    try {
      await row(orderId).locator(`.badge.status-${status}`).waitFor({ timeout: SETTLE_MS });
    } catch (error) {
      throw new Error(
        `row ${orderId} did not show "${status}": ${JSON.stringify(await cells(orderId))}\n` +
          `GET /orders/${orderId}: ${JSON.stringify((await sys.api.getOrder(orderId)).body)}\n${sys.diagnostics()}`,
        { cause: error },
      );
    }
  }

  test('serves the page with a strict content security policy, and the event stream', async () => {
    const response = await fetch(`${sys.system.apiUrl}/dashboard`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(response.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await response.text(), /<title>Orderflow dashboard<\/title>/);
    assert.deepEqual(eventStreams, [], 'no stream before the page has a customer');
    assert.equal((await fetch(`${sys.system.apiUrl}/status-changes`)).status, 401);
    const bad = await fetch(`${sys.system.apiUrl}/status-changes?orderId=not%20an%20id`, {
      headers: { authorization: `Bearer ${sys.api.token}` },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.headers.get('content-type') ?? '', /application\/problem\+json/);
  });

  test('place an order by clicking: the row goes live to confirmed, with its invoice and courier', async () => {
    const orderId = await placeByClick();
    // Sign-up gave the page its token: now it follows its orders live.
    await page.waitForSelector('#live[data-state="live"]', { timeout: 15_000 });
    await waitStatus(orderId, 'confirmed');
    // The view after `confirmed` carries the invoice number and the courier.
    const link = row(orderId).locator('a[href$="/invoice.pdf"]');
    await link.waitFor({ timeout: 10_000 });
    assert.equal(await link.getAttribute('href'), `/orders/${orderId}/invoice.pdf`);
    assert.match((await link.textContent()) ?? '', /^\d{4}-\d{6,}$/);
    // The link fetches the PDF with the customer's token and saves it.
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const saved = await download.path();
    assert.equal((await readFile(saved)).subarray(0, 5).toString(), '%PDF-');
    assert.equal((await fetch(`${sys.system.apiUrl}/orders/${orderId}/invoice.pdf`)).status, 401);
    const pdf = await sys.api.invoicePdf(orderId);
    assert.equal(pdf.status, 200);
    assert.match(pdf.contentType ?? '', /application\/pdf/);
    const [, , total, , reason, , courier] = await cells(orderId);
    assert.match(total ?? '', /17[.,]00/, 'the demo order is 2 × 8.50 (EUR)');
    assert.equal(reason, '');
    assert.ok(courier && courier !== '—', `a courier is shown: ${courier}`);
    assert.equal(await row(orderId).locator('button.cancel').count(), 0, 'no cancel once confirmed');
    assert.equal((await sys.api.getOrder(orderId)).body.status, 'confirmed');
  });

  test('tok_decline: the row ends cancelled / payment declined, without invoice', async () => {
    const orderId = await placeByClick({ token: 'tok_decline' });
    await waitStatus(orderId, 'cancelled');
    await row(orderId).locator('td', { hasText: 'payment declined' }).waitFor({ timeout: 10_000 });
    assert.equal(await row(orderId).locator('a[href$="/invoice.pdf"]').count(), 0);
  });

  test('the cancel button, while the order is cancellable: cancelled / customer request', async () => {
    // A slow PSP holds the order at `placed` long enough to click.
    await sys.setPspFaults({ latencyMs: 2_000 });
    let orderId: string;
    try {
      orderId = await placeByClick();
      await row(orderId).locator('button.cancel').click({ timeout: 5_000 });
    } finally {
      await sys.setPspFaults({ latencyMs: 0 });
    }
    await waitStatus(orderId, 'cancelled');
    await row(orderId).locator('td', { hasText: 'customer request' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#notice').isVisible(), false, await page.innerText('#notice'));
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  test('bad input: the problem+json fields are shown as text, nothing is placed', async () => {
    const before = await rows().count();
    await page.fill('input[name="quantity"]', '0');
    await page.fill('input[name="sku"]', '<img src=x onerror=alert(1)>');
    await page.click('#place');
    await page.locator('#form-error').waitFor({ state: 'visible', timeout: 10_000 });
    const text = await page.innerText('#form-error');
    assert.match(text, /^400 /);
    assert.match(text, /\/items\/0\/quantity/);
    assert.match(text, /\/items\/0\/sku/);
    assert.equal(await page.locator('#form-error img, #orders img').count(), 0, 'values are never HTML');
    assert.equal(await rows().count(), before);
    await page.fill('input[name="quantity"]', '2');
    await page.fill('input[name="sku"]', 'TEA-SENCHA-100G');
  });

  test('the operations console: operator sign-in, topology, orders by status, timeline, dead letters, mailbox', async () => {
    const ops = await browser.newPage();
    const opsErrors: string[] = [];
    ops.on('pageerror', (error) => opsErrors.push(`pageerror: ${error.message}`));
    ops.on('console', (message) => {
      if (message.type() === 'error' && !/status of 4\d\d/.test(message.text()))
        opsErrors.push(`console: ${message.text()}`);
    });
    try {
      await ops.goto(`${sys.system.apiUrl}/dashboard/console.html`);
      // A customer's token is refused (403), and the console stays closed.
      const signUp = await fetch(`${sys.system.apiUrl}/customers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Eve', email: `eve-${Date.now()}@example.test` }),
      });
      const { token: customerToken } = (await signUp.json()) as { token: string };
      await ops.fill('input[name="token"]', customerToken);
      await ops.click('#login');
      await ops.locator('#login-error').waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await ops.innerText('#login-error'), /^403 FORBIDDEN/);
      assert.equal(await ops.locator('#console').isVisible(), false);

      await ops.fill('input[name="token"]', await sys.system.operatorToken('operator:console-test'));
      await ops.click('#login');
      // Topology: every service up with its consumers declared, and the consumers' positions (live).
      await ops
        .locator('#services tr[data-service="payment-processor"] .health-up')
        .waitFor({ timeout: 10_000 });
      assert.match(await ops.innerText('#services tr[data-service="order-storage"]'), /payments\.\*/);
      await ops.locator('#live[data-state="live"]').waitFor({ timeout: 10_000 });
      assert.ok((await ops.locator('#consumers tbody tr[data-consumer^="payment-processor"]').count()) > 0);

      // Orders by status: the page's confirmed order and its declined (cancelled) one.
      await ops.click('#tabs button[data-tab="orders"]');
      await ops
        .locator('#orders tbody tr')
        .first()
        .waitFor({ timeout: 10_000 })
        .catch(async (error: unknown) => {
          throw new Error(`no orders listed: ${await ops.innerText('#notice')}\n${sys.diagnostics()}`, {
            cause: error,
          });
        });
      await ops.selectOption('#orders-filter select[name="status"]', 'cancelled');
      await ops.locator('#orders tbody tr[data-status="cancelled"]').first().waitFor({ timeout: 10_000 });
      // Polled from here: a predicate evaluated in the page (`waitForFunction` with a string) is an
      // eval, which the page's own CSP refuses, as it should.
      await waitFor(
        async () => (await ops.locator('#orders tbody tr:not([data-status="cancelled"])').count()) === 0,
        { timeoutMs: 10_000, message: 'only cancelled orders listed' },
      );
      await ops.selectOption('#orders-filter select[name="status"]', 'confirmed');
      const confirmed = ops.locator('#orders tbody tr[data-status="confirmed"]').first();
      await confirmed.waitFor({ timeout: 10_000 });
      const orderId = await confirmed.getAttribute('data-order-id');
      assert.ok(orderId);
      // Its timeline across services, with trace ids.
      await confirmed.click();
      await ops.locator('#timeline-events tr').nth(3).waitFor({ timeout: 10_000 });
      const timeline = await ops.innerText('#timeline-events');
      for (const service of ['order-storage', 'payment-processor', 'create-invoice', 'assign-delivery'])
        assert.match(timeline, new RegExp(service), timeline);
      assert.match(await ops.innerText('#timeline-order'), new RegExp(orderId));

      // A poison message shows up in dead letters with its reason and payload; discard one, redrive another.
      const nc = await sys.system.connect('console-test', 'chaos');
      try {
        await publishPoison(nc, OrderingTopology, ['deliveries']);
      } finally {
        await nc.close();
      }
      await ops.click('#tabs button[data-tab="dead-letters"]');
      const letters = ops.locator('#dead-letters tbody tr');
      for (const deadline = Date.now() + 30_000; (await letters.count()) < 2;) {
        assert.ok(Date.now() < deadline, `no dead letters in the console\n${sys.diagnostics()}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
        await ops.click('#refresh-dead-letters');
      }
      assert.ok(((await letters.first().locator('pre.payload').textContent()) ?? '').length > 0);
      // Discarding removes that letter (more may arrive meanwhile: the count is no measure of it).
      const first = await letters.first().getAttribute('data-seq');
      await letters.first().locator('button.discard').click();
      await ops
        .locator(`#dead-letters tbody tr[data-seq="${first}"]`)
        .waitFor({ state: 'detached', timeout: 10_000 });
      await ops.click('#refresh-dead-letters');
      await ops
        .locator(`#dead-letters tbody tr[data-seq="${first}"]`)
        .waitFor({ state: 'detached', timeout: 10_000 });
      await ops.click('#redrive-all');
      await ops.locator('#redrive-status', { hasText: /^redriven \d+ of \d+$/ }).waitFor({ timeout: 30_000 });

      // The development mailbox has the confirmed order's mail; the PSP ledger its charge.
      await ops.click('#tabs button[data-tab="mailbox"]');
      await ops.locator('#mailbox tbody tr').first().waitFor({ timeout: 10_000 });
      await ops.click('#tabs button[data-tab="ledger"]');
      await ops.locator('#ledger tbody tr', { hasText: 'charge' }).first().waitFor({ timeout: 10_000 });
      await ops.screenshot({ path: '/tmp/console.png', fullPage: true });
      assert.deepEqual(opsErrors, []);
    } finally {
      await ops.close();
    }
  });

  test('the page logged no errors and kept one event stream open', () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(eventStreams, ['200 text/event-stream; charset=utf-8']);
  });
});
