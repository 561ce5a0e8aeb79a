// The Orderflow dashboard: places demo orders through the gateway's JSON API (POST /customers,
// POST /orders) and follows them live through the server-sent events of GET /status-changes. Every
// value reaches the DOM as text (textContent, attributes set one by one), never as HTML.

const STORED_ORDERS = 'orderflow.dashboard.orders';
const STORED_CUSTOMERS = 'orderflow.dashboard.customers';
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

/** Calls the gateway; resolves with the status and the parsed body (a problem on 4xx/5xx). */
async function api(method, path, body, headers = {}) {
  const response = await fetch(path, {
    method,
    headers: {
      accept: 'application/json',
      ...(body !== undefined && { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
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

async function customerIdFor(name, email) {
  const known = load(STORED_CUSTOMERS, {});
  if (typeof known[email] === 'string') return known[email];
  const answer = await api('POST', '/customers', { name, email });
  if (!answer.ok) throw problemOf(answer);
  known[email] = answer.data.customerId;
  save(STORED_CUSTOMERS, known);
  return answer.data.customerId;
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
    link.target = '_blank';
    link.rel = 'noopener';
    link.textContent = v.invoiceNumber;
    invoice.append(link);
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

function connect() {
  const source = new EventSource('/status-changes');
  source.addEventListener('open', () => {
    setLive('live', 'live');
    // Changes sent while disconnected are gone: load what is still moving.
    for (const [orderId, entry] of orders) if (!TERMINAL.has(entry.view.status)) void refresh(orderId);
  });
  source.addEventListener('status-changed', (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    const entry = orders.get(change.orderId);
    if (!entry || (entry.view.version ?? 0) >= change.version) return;
    // Show the new status at once; the full view (invoice, courier, reason) follows.
    entry.view = { ...entry.view, status: change.status, version: change.version };
    render(change.orderId);
    void refresh(change.orderId);
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      // The server refused the stream (e.g. 503): try again later.
      setLive('down', 'live updates unavailable');
      setTimeout(connect, 5_000);
    } else {
      setLive('connecting', 'reconnecting…');
    }
  });
}

// ───────────────────────────── start ─────────────────────────────

const email = /** @type {HTMLInputElement} */ (form.elements.namedItem('email'));
email.value = `ada+${randomToken().slice(0, 8)}@example.com`;
form.addEventListener('submit', (event) => void placeOrder(event));
for (const orderId of load(STORED_ORDERS, [])) if (typeof orderId === 'string') track(orderId, { orderId });
connect();
