// The operations console: every datum comes from the gateway's `/console/…` API with the operator's
// bearer token (kept in sessionStorage for this tab only). Values go into the DOM as text, never HTML.
// Live parts (consumer positions, redrive progress) are server-sent events read with fetch, since
// EventSource cannot send an Authorization header.

const $ = (selector) => document.querySelector(selector);
const TOKEN_KEY = 'orderflow.operatorToken';
const PAGE = 20;
let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
let live; // AbortController of the consumer positions stream
let ordersOffset = 0;

class HttpProblem extends Error {
  constructor(status, body) {
    super(`${status} ${body?.code ?? ''}: ${body?.detail ?? ''}`.trim());
    this.status = status;
  }
}

async function api(path, init = {}) {
  const response = await fetch(path, {
    ...init,
    headers: { ...init.headers, authorization: `Bearer ${token}` },
  });
  if (!response.ok) {
    const body = await response.json().catch(() => undefined);
    throw new HttpProblem(response.status, body);
  }
  return response;
}
const json = async (path, init) => (await api(path, init)).json();

/** Reads a text/event-stream response, calling `on(event, data)` per event, until it ends or `signal` aborts. */
async function readEvents(response, on) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) on(event, JSON.parse(data.join('\n')));
    }
  }
}

function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}
function row(cells, attributes = {}) {
  const tr = el('tr', undefined, attributes);
  for (const cell of cells) {
    if (cell instanceof Node) {
      const td = el('td');
      td.append(cell);
      tr.append(td);
    } else if (typeof cell === 'number') tr.append(el('td', cell, { class: 'num' }));
    else tr.append(el('td', cell ?? '—'));
  }
  return tr;
}
function list(items) {
  const ul = el('ul', undefined, { class: 'plain' });
  for (const item of items) ul.append(el('li', item));
  return ul;
}
function notice(error) {
  const box = $('#notice');
  if (!error) return void (box.hidden = true);
  box.textContent = error instanceof Error ? error.message : String(error);
  box.hidden = false;
  if (error instanceof HttpProblem && (error.status === 401 || error.status === 403)) signOut(error.message);
}
const guarded =
  (action) =>
  async (...args) => {
    try {
      notice();
      await action(...args);
    } catch (error) {
      notice(error);
    }
  };

// ───────────── topology ─────────────

async function loadTopology() {
  const topology = await json('/console/topology');
  const services = $('#services tbody');
  services.replaceChildren(
    ...topology.services.map((s) =>
      row(
        [
          s.name,
          el('span', s.health, { class: `health-${s.health}` }),
          s.replicas,
          list(s.publishes.map((p) => `${p.subject}: ${p.events.join(', ')}`)),
          list(
            s.consumes.map(
              (c) => `${c.stream}/${c.consumer}${c.filterSubject ? ` ← ${c.filterSubject}` : ''}`,
            ),
          ),
          list(s.serves),
        ],
        { 'data-service': s.name, class: s.health },
      ),
    ),
  );
  $('#streams tbody').replaceChildren(
    ...topology.streams.map((s) =>
      row([s.name, s.subjects.join(' '), s.messages, s.bytes, s.consumers, s.replicas]),
    ),
  );
  showConsumers(topology.consumers);
}

function showConsumers(consumers) {
  $('#consumers tbody').replaceChildren(
    ...consumers.map((c) =>
      row([c.stream, c.name, c.pending, c.ackPending, c.redelivered, c.lag], { 'data-consumer': c.name }),
    ),
  );
}

async function followConsumers() {
  live?.abort();
  live = new AbortController();
  const state = $('#live');
  try {
    const response = await api('/console/consumers/live', { signal: live.signal });
    state.dataset.state = 'live';
    state.textContent = 'live';
    await readEvents(response, (event, data) => {
      if (event === 'consumers') showConsumers(data);
    });
  } catch (error) {
    if (live.signal.aborted) return;
    state.dataset.state = 'offline';
    state.textContent = 'offline — retrying';
    setTimeout(() => token && followConsumers(), 3_000);
    if (error instanceof HttpProblem) notice(error);
  }
}

// ───────────── orders ─────────────

const money = (minor, currency) =>
  new Intl.NumberFormat('en', { style: 'currency', currency }).format(minor / 100);

async function loadOrders() {
  const status = $('#orders-filter select[name="status"]').value;
  const query = new URLSearchParams({ offset: String(ordersOffset), limit: String(PAGE) });
  if (status) query.set('status', status);
  const page = await json(`/console/orders?${query}`);
  const rows = page.orders.map((o) => {
    const badge = el('span', o.status, { class: `badge status-${o.status}` });
    const tr = row([o.orderId, badge, money(o.total, o.currency), o.placedAt, o.updatedAt], {
      'data-order-id': o.orderId,
      'data-status': o.status,
    });
    tr.addEventListener(
      'click',
      guarded(() => loadTimeline(o.orderId)),
    );
    return tr;
  });
  $('#orders tbody').replaceChildren(...rows);
  const last = Math.min(page.offset + page.orders.length, page.total);
  $('#orders-page').textContent = `${page.total === 0 ? 0 : page.offset + 1}–${last} of ${page.total}`;
  $('#orders-prev').disabled = page.offset === 0;
  $('#orders-next').disabled = last >= page.total;
}

async function loadTimeline(orderId) {
  const timeline = await json(`/console/orders/${encodeURIComponent(orderId)}/timeline`);
  $('#timeline').hidden = false;
  $('#timeline-order').textContent = orderId;
  const traces = $('#timeline-traces');
  traces.replaceChildren(el('span', timeline.traces.length === 0 ? 'no trace ids' : 'trace: '));
  for (const t of timeline.traces) {
    traces.append(
      t.url ? el('a', t.traceId, { href: t.url, target: '_blank', rel: 'noopener' }) : el('code', t.traceId),
      ' ',
    );
  }
  const start = timeline.events.length > 0 ? Date.parse(timeline.events[0].time) : 0;
  $('#timeline-events').replaceChildren(
    ...timeline.events.map((e) =>
      row([
        e.sequence,
        e.time,
        `+${((Date.parse(e.time) - start) / 1000).toFixed(3)}`,
        e.source,
        e.type,
        e.traceUrl ? el('a', e.traceId, { href: e.traceUrl, target: '_blank', rel: 'noopener' }) : e.traceId,
      ]),
    ),
  );
  $('#timeline-dead-letters').replaceChildren(
    ...timeline.deadLetters.map((l) =>
      el('li', `dead letter ${l.seq} at ${l.consumer}: ${l.code} ${l.reason}`),
    ),
  );
}

// ───────────── dead letters ─────────────

async function loadDeadLetters() {
  const { deadLetters } = await json('/console/dead-letters');
  $('#dead-letters tbody').replaceChildren(
    ...deadLetters.map((l) => {
      let payload = l.payload;
      try {
        payload = JSON.stringify(JSON.parse(l.payload), null, 2);
      } catch {
        // not JSON: shown as it is
      }
      const actions = el('span');
      for (const action of ['redrive', 'discard']) {
        const button = el('button', action, { type: 'button', class: action });
        button.addEventListener(
          'click',
          guarded(async () => {
            await api(`/console/dead-letters/${l.seq}/${action}`, { method: 'POST' });
            await loadDeadLetters();
          }),
        );
        actions.append(button, ' ');
      }
      return row(
        [
          l.seq,
          l.consumer,
          l.type,
          l.about,
          l.code,
          l.reason,
          el('pre', payload, { class: 'payload' }),
          actions,
        ],
        {
          'data-seq': String(l.seq),
        },
      );
    }),
  );
}

async function redriveAll() {
  const bar = $('#redrive-progress');
  const status = $('#redrive-status');
  bar.hidden = false;
  const response = await api('/console/dead-letters/redrive', { method: 'POST' });
  await readEvents(response, (event, data) => {
    if (event === 'progress' || event === 'done') {
      bar.max = Math.max(1, data.total);
      bar.value = data.done;
      status.textContent =
        event === 'done' ? `redriven ${data.done} of ${data.total}` : `${data.done}/${data.total}`;
    } else if (event === 'failed') status.textContent = `failed: ${data.message}`;
  });
  await loadDeadLetters();
}

// ───────────── development tools ─────────────

async function loadMailbox() {
  const { messages } = await json('/console/mailbox');
  $('#mailbox tbody').replaceChildren(
    ...messages.map((m) =>
      row([
        m.to.join(', '),
        m.subject,
        (m.attachments ?? []).map((a) => a.filename ?? a.contentType).join(', '),
      ]),
    ),
  );
}

async function loadLedger() {
  const { entries } = await json('/console/ledger');
  $('#ledger tbody').replaceChildren(
    ...entries.map((e) => row([e.kind, e.id, e.reference, e.status, e.amount])),
  );
}

// ───────────── shell ─────────────

const loaders = {
  topology: loadTopology,
  orders: loadOrders,
  'dead-letters': loadDeadLetters,
  mailbox: loadMailbox,
  ledger: loadLedger,
};

function showTab(name) {
  for (const button of document.querySelectorAll('#tabs button'))
    button.setAttribute('aria-selected', String(button.dataset.tab === name));
  for (const tab of document.querySelectorAll('.tab')) tab.hidden = tab.id !== `tab-${name}`;
  return guarded(loaders[name])();
}

async function signIn() {
  await loadTopology(); // also checks the token: a 401/403 signs out with the reason
  $('#console').hidden = false;
  $('#login-card').hidden = true;
  $('#logout').hidden = false;
  $('#login-error').hidden = true;
  void followConsumers();
}

function signOut(reason) {
  live?.abort();
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  $('#console').hidden = true;
  $('#login-card').hidden = false;
  $('#logout').hidden = true;
  $('#live').dataset.state = 'idle';
  $('#live').textContent = 'signed out';
  if (reason) {
    $('#login-error').textContent = reason;
    $('#login-error').hidden = false;
  }
}

$('#login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  token = new FormData(event.target).get('token').trim();
  try {
    await signIn();
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch (error) {
    signOut(error.message);
  }
});
$('#logout').addEventListener('click', () => signOut());
for (const button of document.querySelectorAll('#tabs button'))
  button.addEventListener('click', () => showTab(button.dataset.tab));
$('#refresh-topology').addEventListener('click', guarded(loadTopology));
$('#refresh-dead-letters').addEventListener('click', guarded(loadDeadLetters));
$('#refresh-mailbox').addEventListener('click', guarded(loadMailbox));
$('#refresh-ledger').addEventListener('click', guarded(loadLedger));
$('#redrive-all').addEventListener('click', guarded(redriveAll));
$('#orders-filter select[name="status"]').addEventListener('change', () => {
  ordersOffset = 0;
  void guarded(loadOrders)();
});
$('#orders-prev').addEventListener('click', () => {
  ordersOffset = Math.max(0, ordersOffset - PAGE);
  void guarded(loadOrders)();
});
$('#orders-next').addEventListener('click', () => {
  ordersOffset += PAGE;
  void guarded(loadOrders)();
});
if (token) signIn().catch((error) => signOut(error.message));
