// The Orderflow dashboard: signs a customer up (POST /customers answers their bearer token), places
// demo orders as that customer (POST /orders) and follows them live through the server-sent events of
// GET /status-changes, read with fetch (EventSource cannot send an Authorization header). Every value
// reaches the DOM as text (textContent, attributes set one by one), never as HTML. The session (the
// customer and their token) is kept in localStorage: the page's strict CSP runs only its own script.

const STORED_ORDERS = 'orderflow.dashboard.orders';
const STORED_SESSION = 'orderflow.dashboard.session';
const MAX_KEPT = 50;
const TERMINAL = new Set(['confirmed', 'cancelled']);
const STATUSES = new Set(['placed', 'paid', 'confirmed', 'cancellation_requested', 'cancelled']);

const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const form = /** @type {HTMLFormElement} */ (byId('order-form'));
const tbody = /** @type {HTMLTableSectionElement} */ (byId('orders').querySelector('tbody'));

/** orderId → { view (the last GET /orders/:id, or what a notification told), row, loading, again } */
const orders = new Map();

// ───────────────────────────── the API ─────────────────────────────

/** A random token (works on plain http too, where crypto.randomUUID is missing). */
function randomToken() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(
    '',
  );
}

/** `{ email, customerId, token }` of the customer this page acts for, or null before the first sign-up. */
let session = load(STORED_SESSION, null);
if (session && (typeof session.token !== 'string' || typeof session.customerId !== 'string')) session = null;

const authorization = () => (session ? { authorization: `Bearer ${session.token}` } : {});

/** The session's token was refused (expired, or the system's key changed): the next order signs up again. */
function sessionExpired() {
  session = null;
  localStorage.removeItem(STORED_SESSION);
  const notice = byId('notice');
  notice.textContent = 'Your session has expired: the next order signs you up again.';
  notice.hidden = false;
  stopLive();
  setLive('idle', 'place an order to follow it live');
}

/**
 * Calls the gateway as the session's customer (`anonymous`: without a token); resolves with the status
 * and the parsed body (a problem on 4xx/5xx).
 */
async function api(method, path, body, headers = {}, anonymous = false) {
  const response = await fetch(path, {
    method,
    headers: {
      accept: 'application/json',
      ...(body !== undefined && { 'content-type': 'application/json' }),
      ...(!anonymous && authorization()),
      ...headers,
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  if (response.status === 401 && session) sessionExpired();
  const text = await response.text();
  let data = text;
  try {
    data = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { ok: response.ok, status: response.status, data };
}

/** The problem of a failed call as `{ detail, errors }` (problem+json, or whatever came back). */
function problemOf(answer) {
  const p = typeof answer.data === 'object' && answer.data !== null ? answer.data : {};
  return {
    detail: `${answer.status} ${typeof p.detail === 'string' ? p.detail : String(answer.data ?? '')}`,
    errors: Array.isArray(p.errors) ? p.errors : [],
  };
}

// ───────────────────────────── storage ─────────────────────────────

// (function declarations: used above, before this section runs)
function load(key, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(key) ?? 'null');
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

function save(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the page still works, it just forgets on reload
  }
}

const keepOrders = () => save(STORED_ORDERS, [...orders.keys()].slice(-MAX_KEPT));

// ───────────────────────────── the form ─────────────────────────────

const formError = byId('form-error');
const formStatus = byId('form-status');

function showFormProblem(problem) {
  byId('form-error-detail').textContent = problem.detail;
  const list = byId('form-error-fields');
  list.replaceChildren(
    ...problem.errors.map((e) => {
      const li = document.createElement('li');
      li.textContent = `${String(e.field)}: ${String(e.message)}`;
      return li;
    }),
  );
  formError.hidden = false;
}

/** A number when the field holds one, else the text as typed (the gateway names the bad field). */
function numberOrText(value) {
  const n = Number(value);
  return value.trim() !== '' && Number.isFinite(n) ? n : value;
}

/** The session's customer for `email`: signs up (and starts following live) when there is none yet. */
async function customerIdFor(name, email) {
  if (session && session.email === email) return session.customerId;
  const answer = await api('POST', '/customers', { name, email }, {}, true);
  if (!answer.ok) throw problemOf(answer);
  if (typeof answer.data.token !== 'string')
    throw { detail: 'the gateway answered no token (it trusts an identity provider)', errors: [] };
  // Another customer: the orders shown were the previous one's.
  for (const orderId of [...orders.keys()]) forget(orderId);
  session = { email, customerId: answer.data.customerId, token: answer.data.token };
  save(STORED_SESSION, session);
  connect();
  return session.customerId;
}

async function placeOrder(event) {
  event.preventDefault();
  const field = (name) => String(new FormData(form).get(name) ?? '');
  const button = /** @type {HTMLButtonElement} */ (byId('place'));
  button.disabled = true;
  formError.hidden = true;
  formStatus.textContent = 'placing…';
  try {
    const customerId = await customerIdFor(field('name'), field('email'));
    const body = {
      customerId,
      items: [
        {
          sku: field('sku'),
          quantity: numberOrText(field('quantity')),
          unitPrice: numberOrText(field('unitPrice')),
        },
      ],
      currency: field('currency'),
      shippingAddress: {
        line1: field('line1'),
        city: field('city'),
        postalCode: field('postalCode'),
        country: field('country'),
      },
      payment: { token: field('token') },
    };
    const answer = await api('POST', '/orders', body, { 'idempotency-key': `dashboard-${randomToken()}` });
    if (!answer.ok) throw problemOf(answer);
    track(answer.data.orderId, { orderId: answer.data.orderId, status: answer.data.status, version: 0 });
    keepOrders();
    formStatus.textContent = `order ${answer.data.orderId.slice(0, 8)} placed`;
  } catch (error) {
    formStatus.textContent = '';
    showFormProblem(error instanceof Error ? { detail: error.message, errors: [] } : error);
  } finally {
    button.disabled = false;
  }
}

// ───────────────────────────── the table ─────────────────────────────

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** Adds a row for the order (once) and loads its view. */
function track(orderId, view) {
  if (!orders.has(orderId)) {
    const row = document.createElement('tr');
    row.dataset.orderId = orderId;
    tbody.prepend(row);
    orders.set(orderId, { view, row, loading: false, again: false });
    byId('empty').hidden = true;
    render(orderId);
  }
  void refresh(orderId);
}

function money(total, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    return format.format(total / 10 ** digits);
  } catch {
    return `${total} ${currency}`;
  }
}

function render(orderId) {
  const entry = orders.get(orderId);
  if (!entry) return;
  const v = entry.view;
  const status = STATUSES.has(v.status) ? v.status : 'unknown';

  const id = cell('', 'id');
  const code = document.createElement('code');
  code.textContent = orderId.slice(0, 8);
  code.title = orderId;
  id.append(code);

  const badge = document.createElement('span');
  badge.className = `badge status-${status}`;
  badge.textContent = String(v.status ?? '…').replace(/_/g, ' ');
  const statusCell = cell('', 'status');
  statusCell.append(badge);

  const invoice = cell('');
  if (typeof v.invoiceNumber === 'string') {
    const link = document.createElement('a');
    link.href = `/orders/${encodeURIComponent(orderId)}/invoice.pdf`;
    link.textContent = v.invoiceNumber;
    // The PDF needs the token: fetched with it, then saved from a blob.
    link.addEventListener('click', (event) => {
      event.preventDefault();
      void downloadInvoice(link.href, `invoice-${String(v.invoiceNumber)}.pdf`);
    });
    invoice.append(link);
    if (typeof v.creditNoteNumber === 'string') {
      // A refunded order's invoice is cancelled by a credit note.
      const credit = document.createElement('a');
      credit.href = `/orders/${encodeURIComponent(orderId)}/credit-note.pdf`;
      credit.target = '_blank';
      credit.rel = 'noopener';
      credit.textContent = v.creditNoteNumber;
      invoice.append(' credited by ', credit);
    }
  } else {
    invoice.textContent = '—';
  }

  const courier = v.courier
    ? `${v.courier.courierName ?? v.courier.courierId}${v.courier.released ? ' (released)' : ''}`
    : '—';

  const actions = cell('', 'actions');
  const cancellable = (v.status === 'placed' || v.status === 'paid') && (!v.courier || v.courier.released);
  if (cancellable) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'cancel';
    button.textContent = 'Cancel';
    button.addEventListener('click', () => void cancel(orderId, button));
    actions.append(button);
  }

  entry.row.className = TERMINAL.has(v.status) ? `terminal ${status}` : '';
  entry.row.replaceChildren(
    id,
    cell(v.placedAt ? new Date(v.placedAt).toLocaleTimeString() : '…'),
    cell(typeof v.total === 'number' ? money(v.total, v.currency) : '…', 'num'),
    statusCell,
    cell(v.cancellationReason ? String(v.cancellationReason).replace(/_/g, ' ') : ''),
    invoice,
    cell(courier),
    actions,
  );
}

/** Loads GET /orders/:id (one call at a time per order; a change during a call loads again after). */
async function refresh(orderId) {
  const entry = orders.get(orderId);
  if (!entry) return;
  if (entry.loading) {
    entry.again = true;
    return;
  }
  entry.loading = true;
  try {
    do {
      entry.again = false;
      const answer = await api('GET', `/orders/${encodeURIComponent(orderId)}`);
      if (answer.ok) {
        // A late answer never takes the row back to an older state.
        if ((answer.data.version ?? 0) >= (entry.view.version ?? 0)) entry.view = answer.data;
        render(orderId);
      } else if (answer.status === 404 && entry.view.version === undefined) {
        forget(orderId); // remembered from an earlier run of the system
        return;
      }
    } while (entry.again);
  } catch {
    // the gateway is unreachable: the next notification or reconnection loads it again
  } finally {
    entry.loading = false;
  }
}

function forget(orderId) {
  orders.get(orderId)?.row.remove();
  orders.delete(orderId);
  keepOrders();
  byId('empty').hidden = orders.size > 0;
}

async function downloadInvoice(href, filename) {
  const notice = byId('notice');
  try {
    const response = await fetch(href, { headers: authorization() });
    if (response.status === 401 && session) sessionExpired();
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const url = URL.createObjectURL(await response.blob());
    const save = document.createElement('a');
    save.href = url;
    save.download = filename;
    save.click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    notice.textContent = `Invoice: ${String(error instanceof Error ? error.message : error)}`;
    notice.hidden = false;
  }
}

async function cancel(orderId, button) {
  button.disabled = true;
  const notice = byId('notice');
  notice.hidden = true;
  try {
    const answer = await api('POST', `/orders/${encodeURIComponent(orderId)}/cancel`);
    if (!answer.ok) {
      notice.textContent = `Cancel ${orderId.slice(0, 8)}: ${problemOf(answer).detail}`;
      notice.hidden = false;
    }
  } catch (error) {
    notice.textContent = `Cancel ${orderId.slice(0, 8)}: ${String(error)}`;
    notice.hidden = false;
  }
  await refresh(orderId);
}

// ───────────────────────────── live updates ─────────────────────────────

const live = byId('live');

function setLive(state, text) {
  live.dataset.state = state;
  live.textContent = text;
}

/** The open event stream's controller (one at a time), so a new session can end the old stream. */
let liveStream;

function stopLive() {
  liveStream?.abort();
  liveStream = undefined;
}

/** One server-sent event block (`event:`, `data:` lines; comments and `retry:` ignored). */
function onEventBlock(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) type = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (type !== 'status-changed' || data.length === 0) return;
  let change;
  try {
    change = JSON.parse(data.join('\n'));
  } catch {
    return;
  }
  const entry = orders.get(change.orderId);
  if (!entry || (entry.view.version ?? 0) >= change.version) return;
  // Show the new status at once; the full view (invoice, courier, reason) follows.
  entry.view = { ...entry.view, status: change.status, version: change.version };
  render(change.orderId);
  void refresh(change.orderId);
}

/** Follows GET /status-changes as the session's customer; reconnects after a drop. */
async function connect() {
  stopLive();
  if (!session) {
    setLive('idle', 'place an order to follow it live');
    return;
  }
  const controller = new AbortController();
  liveStream = controller;
  const again = (ms) => {
    if (liveStream === controller) setTimeout(() => void connect(), ms);
  };
  try {
    const response = await fetch('/status-changes', {
      headers: { accept: 'text/event-stream', ...authorization() },
      cache: 'no-store',
      signal: controller.signal,
    });
    if (response.status === 401) return sessionExpired();
    if (!response.ok || !response.body) {
      // The server refused the stream (e.g. 503, or too many streams): try again later.
      setLive('down', 'live updates unavailable');
      return again(5_000);
    }
    setLive('live', 'live');
    // Changes sent while disconnected are gone: load what is still moving.
    for (const [orderId, entry] of orders) if (!TERMINAL.has(entry.view.status)) void refresh(orderId);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        onEventBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch {
    if (controller.signal.aborted) return;
  }
  setLive('connecting', 'reconnecting…');
  again(2_000);
}

// ───────────────────────────── start ─────────────────────────────

const email = /** @type {HTMLInputElement} */ (form.elements.namedItem('email'));
// The same customer as last time while the session lasts; else a new demo address.
email.value = session?.email ?? `ada+${randomToken().slice(0, 8)}@example.com`;
form.addEventListener('submit', (event) => void placeOrder(event));
if (session)
  for (const orderId of load(STORED_ORDERS, [])) if (typeof orderId === 'string') track(orderId, { orderId });
void connect();
