// The demo inbox of `herald dev`: plain DOM code around the SDK
// (/sdk/herald.js, clients/js). URL parameters: ?user=ada connects at
// once, &transport=websocket|sse|longpoll forces a transport, &shared=0
// turns off the one-connection-per-browser sharing between tabs.
//
// The browser tests (clients/js/test/browser) rely on the element ids and
// data attributes used here and on window.heraldDemo: keep them stable.

const HISTORY = 50; // notifications shown from before the page opened
const MAX_ITEMS = 500; // notifications kept on the page
const PUSHES_SHOWN = 30;
const PUSH_POLL_MS = 2000;

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const demo = { client: null, seen: [] };
window.heraldDemo = demo;

/** seq → {n, li}: what #list shows, one entry per seq. */
const items = new Map();
/** What #badge shows: the SDK's unread count. */
let unread = 0;

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function notice(msg) {
  const n = $('#notice');
  n.textContent = msg || '';
  n.hidden = !msg;
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Not a secure context (a LAN address): same format from getRandomValues.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function postJSON(path, body, headers = {}) {
  const r = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const reply = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(reply.error || `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return reply;
}

async function devToken(user) {
  return (await postJSON('/v1/dev/token', { user_id: user })).token;
}

function timeOf(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

/** Navigates to this page with the given parameters changed. */
function go(changes) {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v == null || v === '') p.delete(k);
    else p.set(k, v);
  }
  location.search = p.toString();
}

// ------------------------------------------------------- connection state

function showState(s) {
  const conn = $('#conn');
  const state = (s && s.state) || 'closed';
  const transport = (s && s.transport) || '';
  conn.dataset.state = state;
  conn.dataset.transport = transport;
  $('#state').textContent = state;
  $('#transport').textContent = transport;
  let role = '';
  if (demo.client && state !== 'closed') {
    role = s.leader ? 'this tab holds the connection' : 'shared from another tab';
  }
  $('#role').textContent = role;
  conn.title = s && s.reason ? `Connection state and transport (${s.reason})` : 'Connection state and transport';
}

function setBadge(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return;
  unread = n;
  $('#badge').textContent = String(n);
  $('.badge').classList.toggle('has-unread', n > 0);
}

// ------------------------------------------------------------------ inbox

function render(n, fresh) {
  const read = Boolean(n.read);
  const li = el('li', { 'data-seq': String(n.seq), 'data-id': n.id || '', 'data-read': String(read) });
  if (fresh) li.classList.add('fresh');
  const meta = el('div', { class: 'meta' },
    el('span', { class: 'type', text: n.type || 'event' }));
  if (n.priority && n.priority !== 'normal') {
    meta.append(el('span', { class: `type prio-${n.priority}`, text: n.priority }));
  }
  meta.append(
    el('time', { datetime: n.created_at || '', title: n.created_at || '', text: timeOf(n.created_at) }),
    el('span', { text: `#${n.seq}` }));
  const main = el('div', { class: 'content' },
    el('div', { class: 'title', text: n.title || '(no title)' }));
  if (n.body) main.append(el('div', { class: 'body', text: n.body }));
  main.append(meta);
  const button = el('button', { type: 'button', class: 'mark-read', text: 'mark read' });
  button.addEventListener('click', () => markRead([n.seq]));
  li.append(el('span', { class: 'mark', 'aria-hidden': 'true' }), main, el('div', { class: 'side-actions' }, button));
  return li;
}

/**
 * Shows n at its place in #list (newest first), replacing what was shown at
 * its seq when the id differs (the inbox reused the seq). For one already
 * shown only its read flag can change, and only to read: nothing is ever
 * marked unread, so an answer older than a local mark read cannot undo it.
 */
function upsert(n, { fresh = false } = {}) {
  const seq = Number(n.seq);
  if (!Number.isSafeInteger(seq) || seq <= 0) return;
  const had = items.get(seq);
  if (had) {
    if (had.n.id === n.id) {
      if (n.read) setRead(seq);
      return;
    }
    had.li.remove(); // the inbox reused this seq: the new notification is the truth
    items.delete(seq);
  }
  const shown = { ...n, read: Boolean(n.read) };
  const li = render(shown, fresh);
  let before = null;
  for (const child of $('#list').children) {
    if (Number(child.dataset.seq) < seq) { before = child; break; }
  }
  $('#list').insertBefore(li, before);
  items.set(seq, { n: shown, li });
  while (items.size > MAX_ITEMS) {
    const oldest = Math.min(...items.keys());
    items.get(oldest).li.remove();
    items.delete(oldest);
  }
  $('#empty').hidden = items.size > 0;
}

/** Marks what #list shows at seq read. */
function setRead(seq) {
  const it = items.get(seq);
  if (!it) return;
  it.n.read = true;
  it.li.dataset.read = 'true';
}

async function markRead(seqs) {
  const client = demo.client;
  if (!client) return;
  try {
    const count = await client.markRead(seqs);
    if (seqs === 'all') for (const seq of items.keys()) setRead(seq);
    else for (const seq of seqs) setRead(seq);
    setBadge(count);
    notice('');
  } catch (e) {
    notice(`Marking read failed: ${e.message || e}`);
  }
}

function maxSeq() {
  let m = 0;
  for (const seq of items.keys()) if (seq > m) m = seq;
  return m;
}

/** GET /v1/notifications pages from after on; at most `pages` of them. */
async function fetchFrom(after, pages) {
  const out = [];
  for (let i = 0; i < pages; i++) {
    const page = await demo.client.list({ after, limit: 500 });
    const list = Array.isArray(page) ? page : (page && page.notifications) || [];
    out.push(...list);
    if (list.length < 500) break;
    const next = Number(page.next) || Number(list[list.length - 1].seq);
    if (!(next > after)) break;
    after = next;
  }
  return out;
}

let historyLoaded = false;

/** Shows the newest HISTORY notifications from before the page opened. */
async function loadHistory() {
  if (!demo.client) return;
  historyLoaded = true;
  try {
    const head = Math.max(Number(demo.client.cursor) || 0, maxSeq());
    const list = await fetchFrom(Math.max(0, head - HISTORY), 20);
    // Knowing the head, the list is the last HISTORY and anything newer;
    // not knowing it, it is the whole inbox.
    for (const n of head > 0 ? list : list.slice(-HISTORY)) upsert(n);
  } catch (e) {
    historyLoaded = false;
    notice(`Loading the inbox failed: ${e.message || e}`);
  }
}

let refreshTimer = 0;

/** Re-reads the read flags of what is shown (another tab or device read some). */
function refreshReadSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    if (!demo.client || items.size === 0) return;
    const local = [...items.values()].filter((it) => !it.n.read).length;
    if (local === unread) return;
    try {
      const from = Math.min(...items.keys()) - 1;
      for (const n of await fetchFrom(from, 2)) if (n.read) setRead(Number(n.seq));
    } catch {
      // the next unread change tries again
    }
  }, 250);
}

// ---------------------------------------------------------------- connect

async function connect(user) {
  $('#user').value = user;
  $('#who').textContent = `· ${user}`;
  if (!$('#send-user').value) $('#send-user').value = user;
  document.title = `${user} · Herald demo inbox`;
  showState({ state: 'connecting', transport: null });

  let first;
  try {
    first = await devToken(user);
  } catch (e) {
    showState({ state: 'closed', transport: null });
    notice(`Cannot connect as “${user}”: ${e.message}`);
    return;
  }
  let Herald;
  try {
    ({ Herald } = await import('/sdk/herald.js'));
  } catch (e) {
    showState({ state: 'closed', transport: null });
    notice(`The SDK did not load from /sdk/herald.js (${e.message || e}). Is clients/js built into this binary?`);
    return;
  }

  const transport = params.get('transport') || 'auto';
  const client = new Herald({
    url: location.origin,
    transport,
    shared: params.get('shared') !== '0',
    getToken: async () => {
      if (first) {
        const t = first;
        first = null;
        return t;
      }
      return devToken(user);
    },
  });
  demo.client = client;

  client.on('state', (s) => {
    showState(s);
    if (s.state === 'synced') {
      setBadge(client.unread);
      if (!historyLoaded) loadHistory();
    }
  });
  client.on('notification', (n) => {
    demo.seen.push(n.seq);
    upsert(n, { fresh: true });
  });
  // The SDK counts new unread notifications itself (the server sends a
  // count at synced and after reads).
  client.on('unread', (count) => {
    setBadge(count);
    if (count === 0) for (const seq of items.keys()) setRead(seq);
    else refreshReadSoon();
  });
  client.on('resync', () => loadHistory());

  $('#mark-all').disabled = false;
  showState({ state: client.state, transport: client.transport, leader: client.leader });
  // A tab that does not hold the connection may never see 'synced' itself:
  // load what is already in the inbox in any case.
  setTimeout(() => { if (!historyLoaded) loadHistory(); }, 1500);
  // Closing hands the connection to another tab at once; a page restored
  // from the back/forward cache starts over.
  addEventListener('pagehide', () => client.close());
  addEventListener('pageshow', (ev) => { if (ev.persisted) location.reload(); });
}

// ------------------------------------------------------------------- send

async function send(ev) {
  ev.preventDefault();
  const result = $('#send-result');
  const event = {
    id: uuid(),
    user_id: $('#send-user').value.trim(),
    type: $('#send-type').value.trim(),
    priority: $('#send-priority').value,
  };
  const title = $('#send-title').value.trim();
  const body = $('#send-body').value.trim();
  if (title) event.title = title;
  if (body) event.body = body;
  $('#send-button').disabled = true;
  try {
    await postJSON('/v1/dev/events', event);
    result.className = 'result ok';
    result.textContent = `Accepted: ${event.type} for ${event.user_id} (id ${event.id.slice(0, 8)}…)`;
  } catch (e) {
    result.className = 'result err';
    result.textContent = `Refused: ${e.message}`;
  } finally {
    $('#send-button').disabled = false;
  }
}

async function addDevice() {
  const result = $('#send-result');
  const user = $('#send-user').value.trim() || $('#user').value.trim();
  if (!user) {
    result.className = 'result err';
    result.textContent = 'Fill in “To user” first.';
    return;
  }
  const token = `ok-${user}-${uuid().slice(0, 8)}`;
  try {
    const jwt = await devToken(user);
    await postJSON('/v1/devices', { platform: 'ios', token }, { Authorization: `Bearer ${jwt}` });
    result.className = 'result ok';
    result.textContent = `Registered a fake iPhone (${token}) for ${user}.`;
  } catch (e) {
    result.className = 'result err';
    result.textContent = `Registering a device failed: ${e.message}`;
  }
}

// ----------------------------------------------------------------- pushes

function pushTitle(p) {
  const pl = p.payload || {};
  if (p.provider === 'apns') return (pl.aps && pl.aps.alert && pl.aps.alert.title) || '';
  const m = pl.message || {};
  return (m.notification && m.notification.title) || (m.android && m.android.notification && m.android.notification.title) || '';
}

let pushesKey = '';

async function pollPushes() {
  try {
    const r = await fetch('/v1/dev/pushes', { cache: 'no-store' });
    if (r.ok) {
      const { pushes = [] } = await r.json();
      const last = pushes[pushes.length - 1];
      const key = `${pushes.length}:${last ? last.at : ''}`;
      if (key !== pushesKey) {
        pushesKey = key;
        const list = $('#pushes');
        list.replaceChildren(...pushes.slice(-PUSHES_SHOWN).reverse().map((p) => {
          const ok = p.status >= 200 && p.status < 300;
          return el('li', {},
            el('span', { class: `prov ${p.provider}`, text: p.provider === 'apns' ? 'APNs' : 'FCM' }),
            el('span', { class: 'what' },
              el('span', { text: pushTitle(p) || '(no title)' }), ' ',
              el('span', { class: 'tok', text: p.token })),
            el('span', { class: `st ${ok ? 'ok' : 'err'}`, title: timeOf(p.at), text: ok ? String(p.status) : `${p.status} ${p.reason || ''}`.trim() }));
        }));
        $('#pushes-empty').hidden = pushes.length > 0;
      }
    }
  } catch {
    // herald dev restarting: try again at the next tick
  }
  setTimeout(pollPushes, PUSH_POLL_MS);
}

// ------------------------------------------------------------------ start

function curlHelp(user) {
  const o = location.origin;
  $('#curl').textContent = [
    `# send ${user} an event, as this page does (herald dev adds its API key)`,
    `curl -d '{"id":"e-'$RANDOM$RANDOM'","user_id":"${user}","type":"mention","title":"Hi from curl"}' \\`,
    `  ${o}/v1/dev/events`,
    '',
    `# or like an upstream service, with the dev API key (POST /v1/events)`,
    `bin/herald send --user ${user} --type mention --title Hi`,
    '',
    `# ${user}'s inbox and unread count, with a user token`,
    `TOKEN=$(bin/herald token ${user})`,
    `curl -H "Authorization: Bearer $TOKEN" ${o}/v1/notifications`,
    `curl -H "Authorization: Bearer $TOKEN" ${o}/v1/notifications/unread_count`,
  ].join('\n');
}

function start() {
  $('#picker').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const u = $('#user').value.trim();
    if (u) go({ user: u });
  });
  for (const chip of document.querySelectorAll('.chip[data-user]')) {
    chip.addEventListener('click', () => go({ user: chip.dataset.user }));
  }
  $('#mark-all').addEventListener('click', () => markRead('all'));
  $('#send').addEventListener('submit', send);
  $('#add-device').addEventListener('click', addDevice);
  pollPushes();

  const user = (params.get('user') || '').trim();
  curlHelp(user || 'ada');
  showState({ state: 'closed', transport: null });
  if (user) {
    connect(user);
  } else {
    $('#user').focus();
  }
}

start();
