// Web chat and thread inspector for the ingest API. Plain ES module: no build, no dependencies.
//
// The conversation is rebuilt from the thread's AG-UI event stream (from `after=-1` on open),
// then follows it live. The stream's `id:` cursor is tracked here, and every reconnect asks
// for a fresh stream token and resumes after the last id received, so nothing is lost or
// shown twice. The thread detail (`GET /v1/threads/{id}`) gives the title, cost and token
// usage, and checks the approvals still waiting.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'messagedb-agent.token';
const BACKOFF_MIN = 500;
const BACKOFF_MAX = 15000;
const AGUI_TYPES = [
  'RUN_STARTED', 'RUN_FINISHED', 'RUN_ERROR', 'TEXT_MESSAGE_START', 'TEXT_MESSAGE_CONTENT',
  'TEXT_MESSAGE_END', 'TOOL_CALL_START', 'TOOL_CALL_ARGS', 'TOOL_CALL_END', 'TOOL_CALL_RESULT',
  'STATE_SNAPSHOT', 'CUSTOM',
];
const TOOL_STATUS = {
  pending: 'running', awaiting_approval: 'awaiting approval', completed: 'done',
  failed: 'failed', declined: 'declined', in_doubt: 'in doubt',
};
// The results the stream gives a call that did not run to completion, by their keys.
const OUTCOMES = { error: 'failed', declined: 'declined', cancelled: 'declined', in_doubt: 'in_doubt' };
const OUTCOME_KEYS = new Set([...Object.keys(OUTCOMES), 'kind', 'not_run_again']);
const CONNECTION = { live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };
const CANCELLED = 'The run was cancelled.';

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    Object.assign(this, { status, code });
  }
}

const state = {
  token: '', tab: 'chat', threads: [], nextCursor: null, me: null, meError: '',
  connection: 'offline', ...blankThread(),
};

function blankThread() {
  return {
    threadId: null,
    gen: 0, // bumped whenever the open thread changes: answers about another one are dropped
    items: new Map(), // `m:<messageId>` or `t:<toolCallId>` -> its record and element
    approvals: new Map(), // call id (as the approval endpoint takes it) -> approval waiting
    pending: [], // user messages sent from here, not yet seen on the stream
    lastUserPos: -1, // position of the newest user message the stream has shown
    streamPos: -1, // position of the newest recorded event the stream has shown
    streaming: new Set(), running: false,
    baseline: Number.MAX_SAFE_INTEGER, // the thread's version when opened: later is news
    detail: null,
    es: null, lastId: '-1', connLastId: '', backoff: BACKOFF_MIN, retryTimer: 0,
    events: [], eventsAfter: -1, eventsLoaded: false, eventsChain: Promise.resolve(),
    detailRows: new Map(),
  };
}

// -- small helpers ----------------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

let uidCounter = 0;
const uid = (prefix) => `${prefix}-${++uidCounter}`;
const num = (value) => Number(value ?? 0).toLocaleString();
const finite = (pos) => (Number.isFinite(pos) ? pos : -1);
const threadPath = (id, rest = '') => `/v1/threads/${encodeURIComponent(id)}${rest}`;

function attempt(fn, fallback) {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

async function busy(buttons, fn) {
  for (const button of buttons) button.disabled = true;
  try {
    await fn();
  } catch (error) {
    fail(error);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

function debounce(fn, ms) {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

// The time of day to the second (`precise`, the full moment in a title), or date and minute.
function fmtTime(iso, precise = false) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return iso ? String(iso) : '';
  if (precise) return date.toLocaleTimeString();
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function usd(value) {
  if (typeof value !== 'number') return '—';
  return value === 0 ? '$0.00' : `$${value.toFixed(value >= 0.01 ? 4 : 6)}`;
}

function pretty(value) {
  if (typeof value !== 'string') return JSON.stringify(value, null, 2) ?? String(value);
  return attempt(() => JSON.stringify(JSON.parse(value), null, 2), value); // or plain text
}

// sessionStorage may be refused (a private mode): the token then lasts as long as the page
const remember = (token) => attempt(() => (token
  ? sessionStorage.setItem(TOKEN_KEY, token) : sessionStorage.removeItem(TOKEN_KEY)));
const recall = () => attempt(() => sessionStorage.getItem(TOKEN_KEY), null);

// -- the API ----------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: 'application/json' };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', "I can't reach the server; check the connection and try again.");
  }
  const text = await response.text();
  const data = attempt(() => (text ? JSON.parse(text) : null), null); // a proxy's page is not JSON
  if (response.ok) return data;
  const error = data?.error;
  const fallback = `The server answered ${response.status} ${response.statusText}`.trim() + '.';
  throw new ApiError(response.status, error?.code || `http_${response.status}`, error?.message || fallback);
}

function showAlert(message) {
  $('alert').hidden = !message;
  $('alert-text').textContent = message || '';
}

let noticeTimer = 0;
function notify(message) {
  $('notice').textContent = message;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { $('notice').textContent = ''; }, 8000);
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401) return signOut(error.message);
  if (!(error instanceof ApiError)) console.error(error);
  const page = `Something went wrong in this page: ${error.message}`;
  showAlert(error instanceof ApiError ? error.message : page);
}

// -- signing in -------------------------------------------------------------------------------

const fragment = () => new URLSearchParams(location.hash.slice(1));

function setHash(params) {
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

function showSignIn(message) {
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  showAlert(message);
  $('token').focus();
}

async function signIn(token) {
  state.token = token;
  $('sign-in').disabled = true;
  try {
    await loadThreads(false);
  } catch (error) {
    state.token = '';
    if (error.status === 401) remember(null);
    else $('token').value = token; // worth another try as it is
    return showSignIn(error.message);
  } finally {
    $('sign-in').disabled = false;
  }
  remember(token);
  showAlert('');
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  loadMe();
  const threadId = fragment().get('thread');
  if (threadId) openThread(threadId);
  else newDraft();
}

function signOut(message) {
  resetThread();
  remember(null);
  Object.assign(state, { token: '', threads: [], nextCursor: null, me: null, meError: '' });
  $('thread-list').replaceChildren();
  $('who').textContent = '';
  $('token').value = '';
  setHash(new URLSearchParams());
  showSignIn(message);
}

// -- the thread list --------------------------------------------------------------------------

async function loadThreads(more) {
  const query = new URLSearchParams({ limit: '20' });
  if (more && state.nextCursor) query.set('cursor', state.nextCursor);
  const page = await api('GET', `/v1/threads?${query}`);
  state.threads = more ? state.threads.concat(page.threads) : page.threads;
  state.nextCursor = page.next_cursor;
  renderThreads();
}

function renderThreads() {
  const focused = document.activeElement?.dataset?.threadId;
  const items = state.threads.map((t) => h('li', {},
    h('button', {
      type: 'button', class: 'thread-item', 'data-testid': 'thread-item', 'data-thread-id': t.thread_id,
      'aria-current': t.thread_id === state.threadId ? 'true' : null, onclick: () => openThread(t.thread_id),
    },
    h('span', { class: 'thread-name', text: t.title || 'Untitled conversation' }),
    h('span', { class: 'thread-meta' },
      h('span', { class: `badge s-${t.status}`, text: t.status }),
      h('time', { datetime: t.last_activity_at, text: fmtTime(t.last_activity_at) })))));
  if (!items.length) items.push(h('li', { class: 'muted', text: 'No threads yet.' }));
  $('thread-list').replaceChildren(...items);
  $('more-threads').hidden = !state.nextCursor;
  if (focused) document.querySelector(`[data-thread-id="${CSS.escape(focused)}"]`)?.focus();
}

function noteThread(detail) {
  const entry = state.threads.find((t) => t.thread_id === detail.thread_id);
  if (!entry) return;
  const { title, status, version } = detail;
  const activity = detail.last_activity_at || entry.last_activity_at;
  Object.assign(entry, { title, status, version, last_activity_at: activity });
  state.threads.sort((a, b) => String(b.last_activity_at).localeCompare(String(a.last_activity_at)));
  renderThreads();
}

function setSidebar(open) {
  $('sidebar').dataset.open = String(open);
  $('threads-toggle').setAttribute('aria-expanded', String(open));
}

// -- opening a thread -------------------------------------------------------------------------

function resetThread() {
  closeStream();
  Object.assign(state, blankThread(), { gen: state.gen + 1 });
  for (const id of ['conversation', 'approvals', 'event-rows']) $(id).replaceChildren();
  $('conversation').setAttribute('aria-busy', 'false');
  $('approvals').hidden = true;
  $('snapshot').textContent = 'No state received yet.';
  $('event-count').textContent = '';
  setStatus(null);
  renderRunning();
  updateEmpty();
}

function newDraft() {
  resetThread();
  setHash(new URLSearchParams());
  $('thread-title').textContent = 'New conversation';
  renderThreads();
  setSidebar(false);
  selectTab('chat');
  $('composer').focus();
}

async function openThread(id, { pendingText } = {}) {
  resetThread();
  state.threadId = id;
  const gen = state.gen;
  setHash(new URLSearchParams({ thread: id }));
  $('thread-title').textContent = state.threads.find((t) => t.thread_id === id)?.title || 'Conversation';
  renderThreads();
  renderInspector();
  setSidebar(false);
  if (pendingText) addPending(pendingText, -1);
  setConnection('reconnecting');
  try {
    const detail = await api('GET', threadPath(id, '?limit=1'));
    if (gen !== state.gen) return;
    state.baseline = detail.version;
    applyDetail(detail);
  } catch (error) {
    if (gen !== state.gen) return;
    fail(error);
    if (error.status === 404 || error.status === 401) return setConnection('offline');
  }
  connect(gen);
}

function applyDetail(detail) {
  state.detail = detail;
  $('thread-title').textContent = detail.title || 'Untitled conversation';
  setStatus(detail.status);
  syncApprovals(detail.pending_approvals.map((a) => ({ ...a, call_id: a.tool_call_id, tool_call_id: null })),
    detail.version);
  noteThread(detail);
  renderUsage();
}

const refreshDetail = debounce(async () => {
  const { threadId, gen } = state;
  if (!threadId) return;
  try {
    const detail = await api('GET', threadPath(threadId, '?limit=1'));
    if (gen !== state.gen) return;
    applyDetail(detail);
    if (state.eventsLoaded) loadMe();
  } catch (error) {
    if (gen === state.gen) fail(error);
  }
}, 400);

const refreshEventsSoon = debounce(() => refreshEvents(), 300);

function setStatus(status) {
  const badge = $('thread-status');
  badge.hidden = !status;
  badge.textContent = status || '';
  badge.className = `badge s-${status}`;
}

// -- the live stream --------------------------------------------------------------------------

function setConnection(value) {
  state.connection = value;
  document.querySelector('[data-testid="connection"]').dataset.state = value;
  $('connection-text').textContent = CONNECTION[value];
}

async function connect(gen) {
  if (gen !== state.gen || !state.threadId) return;
  const id = state.threadId;
  let token;
  try {
    ({ token } = await api('POST', threadPath(id, '/stream-token')));
  } catch (error) {
    if (gen !== state.gen) return;
    if (![401, 403, 404].includes(error.status)) return retry(gen);
    setConnection('offline');
    return fail(error);
  }
  if (gen !== state.gen) return;
  state.es?.close();
  // a stream token in the URL, never the bearer token: EventSource cannot send headers
  const query = new URLSearchParams({ token, after: state.lastId });
  const es = new EventSource(threadPath(id, `/stream?${query}`));
  state.es = es;
  state.connLastId = '';
  const onEvent = (event) => {
    if (state.es === es) receive(event);
  };
  es.onopen = () => {
    if (state.es === es) setConnection('live');
  };
  es.onmessage = onEvent;
  for (const type of AGUI_TYPES) es.addEventListener(type, onEvent);
  es.onerror = () => {
    // the server ends a stream after a while, and on errors: resume with a fresh token
    // (not EventSource's own reconnect, whose token has expired and whose cursor is its own)
    if (state.es !== es) return;
    es.close();
    state.es = null;
    retry(gen);
  };
}

function retry(gen) {
  setConnection('reconnecting');
  clearTimeout(state.retryTimer);
  const wait = state.backoff + Math.random() * 250;
  state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX);
  state.retryTimer = setTimeout(() => connect(gen), wait);
}

function closeStream() {
  clearTimeout(state.retryTimer);
  state.es?.close();
  state.es = null;
  setConnection('offline');
}

const HANDLERS = {
  RUN_STARTED: () => setRunning(true),
  RUN_FINISHED: (e, ctx) => runFinished(e.outcome || {}, ctx),
  RUN_ERROR: (e, ctx) => {
    runOver();
    addNote(e.message || 'The run stopped with an error.', ctx, 'error');
    if (ctx.live && e.message) showAlert(e.message);
  },
  TEXT_MESSAGE_START: (e, ctx) => {
    const known = state.items.get(`m:${e.messageId}`);
    // the stream repeats a START only when this connection did not carry the message's deltas:
    // its whole text follows, to replace what streamed on an earlier connection
    if (known && ctx.hasId) known.whole = true;
    ensureMessage(e.messageId, e.role, ctx);
  },
  TEXT_MESSAGE_CONTENT: (e, ctx) => addText(ensureMessage(e.messageId, e.role, ctx), 'text', e.delta, ctx),
  TEXT_MESSAGE_END: (e, ctx) => {
    const record = state.items.get(`m:${e.messageId}`);
    if (record) endMessage(recorded(record, ctx));
  },
  TOOL_CALL_START: (e, ctx) => ensureTool(e.toolCallId, ctx, e.toolCallName),
  TOOL_CALL_ARGS: (e, ctx) => renderTool(addText(ensureTool(e.toolCallId, ctx), 'args', e.delta, ctx)),
  TOOL_CALL_RESULT: (e, ctx) => toolResult(ensureTool(e.toolCallId, ctx), e.content),
  STATE_SNAPSHOT: (e) => {
    const snapshot = e.snapshot ?? {};
    $('snapshot').textContent = pretty(snapshot);
    if (typeof snapshot.status === 'string') setStatus(snapshot.status);
    if (Array.isArray(snapshot.pending_approvals)) syncApprovals(snapshot.pending_approvals, snapshot.version);
  },
  CUSTOM: (e, ctx) => custom(e.name, e.value && typeof e.value === 'object' ? e.value : {}, ctx),
};

function receive(event) {
  const message = attempt(() => JSON.parse(event.data), null);
  if (!message) return;
  // EventSource repeats the previous id on an event that carries none: a new id is a cursor
  const id = event.lastEventId;
  const fresh = Boolean(id) && id !== state.connLastId;
  state.connLastId = id;
  if (fresh) state.lastId = id; // `12~40` too: live text after 12, resumed without repeats
  const hasId = fresh && !id.includes('~'); // a recorded event, not live text
  let pos = Infinity; // live (not yet recorded): newer than anything read
  if (hasId) {
    const parsed = Number.parseInt(id, 10); // `12.3`: one of the AG-UI events of position 12
    if (Number.isFinite(parsed)) pos = parsed;
    state.streamPos = Math.max(state.streamPos, finite(pos));
  }
  state.backoff = BACKOFF_MIN;
  if (state.connection !== 'live') setConnection('live');
  const handler = HANDLERS[message?.type];
  if (handler) handler(message, { hasId, pos, live: !hasId || pos > state.baseline });
  if (hasId && state.eventsLoaded && pos > state.eventsAfter) refreshEventsSoon();
}

function runOver() {
  setRunning(false);
  // a reply cut short (cancelled, failed) gets no END; one still open may yet be continued:
  // live deltas of the next run can come before this run's recorded end
  for (const record of state.items.values()) {
    if (record.kind === 'message' && !record.done) settle(record, false);
  }
  refreshDetail();
}

function runFinished(outcome, ctx) {
  runOver();
  if (outcome.type === 'cancelled') addNote(CANCELLED, ctx);
  if (outcome.type !== 'interrupt') return;
  for (const interrupt of outcome.interrupts || []) {
    if (!interrupt.toolCallId || (interrupt.reason && interrupt.reason !== 'tool_approval')) continue;
    const about = interrupt.metadata || {};
    approvalAsked({ ...about, tool_call_id: interrupt.toolCallId, expires_at: interrupt.expiresAt }, ctx.pos,
      interrupt.message);
  }
}

function custom(name, v, ctx) {
  if (name === 'approval_requested') approvalAsked(v, ctx.pos);
  else if (name === 'approval_decided') {
    dropApproval(v.call_id ?? v.tool_call_id);
    const record = state.items.get(`t:${v.tool_call_id}`);
    if (record?.status === 'awaiting_approval') {
      record.status = v.decision === 'approved' ? 'pending' : 'declined';
      renderTool(record);
    }
  } else if (name === 'in_doubt') {
    const record = state.items.get(`t:${v.tool_call_id}`);
    if (record) renderTool(Object.assign(record, { status: 'in_doubt' }));
  } else if (name === 'turn_cancelled') {
    for (const id of [...state.approvals.keys()]) dropApproval(id); // withdrawn with the turn
    runOver();
    addNote(CANCELLED, ctx);
  } else if (name === 'late_answer_ignored') {
    // the answer of a cancelled step: recorded, acted on by nothing, not part of the chat
    dropMessage(v.message_id ?? v.step_id);
  } else if (name === 'retry' || name === 'attempt_failed') {
    // words of a model attempt that failed: never recorded, so a reload would not show them
    const record = state.items.get(`m:${v.message_id}`);
    if (record?.unrecorded) dropMessage(v.message_id);
  } else if (name === 'compacted') {
    addNote('Older messages were summarised to keep the conversation within the model’s context.', ctx);
  }
}

function dropMessage(id) {
  const record = state.items.get(`m:${id}`);
  if (!record) return;
  stick(() => Object.assign(record, { done: true }).el.remove());
}

// -- the conversation -------------------------------------------------------------------------

// Items stand in stream order, by the position of the event that recorded them, as they will
// when the thread is read again. A message streaming live has no position yet: it stays last
// until its own event places it (events recorded before it may still be on their way).
function placeAt(el, pos) {
  const box = $('conversation');
  el.dataset.pos = Number.isFinite(pos) ? String(pos) : '';
  let next = null; // the first of the items at the end that belong after this one
  for (let item = box.lastElementChild; item; item = item.previousElementSibling) {
    if (item === el) continue;
    const live = item.dataset.pos === '';
    if (live ? !Number.isFinite(pos) : !(Number(item.dataset.pos) > pos)) break;
    next = item;
  }
  stick(() => (next ? next.before(el) : box.append(el)));
}

// A message's first event with an id: it takes its place among the recorded ones.
function recorded(record, ctx) {
  if (ctx.hasId && record.unrecorded) {
    record.unrecorded = false;
    placeAt(record.el, ctx.pos);
  }
  return record;
}

function stick(change) {
  const box = $('conversation');
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  change(box);
  if (atEnd) box.scrollTop = box.scrollHeight;
  updateEmpty();
}

function updateEmpty() {
  $('empty-chat').hidden = $('conversation').children.length > 0;
}

function bubble(role, text, extra = {}) {
  const textEl = h('div', { class: 'text', text });
  const el = h('li', { class: `msg ${role}`, 'data-testid': 'message', 'data-role': role, ...extra },
    h('span', { class: 'who', text: role === 'user' ? 'You' : 'Assistant' }), textEl);
  return { el, textEl };
}

function addPending(text, pos) {
  if (pos >= 0 && pos <= state.lastUserPos) return; // the stream was quicker than the answer
  const { el } = bubble('user', text, { 'data-pending': 'true' });
  placeAt(el, pos);
  state.pending.push({ pos, el });
}

function ensureMessage(id, role, ctx) {
  const key = `m:${id}`;
  if (state.items.has(key)) return state.items.get(key); // a START after its deltas changes nothing
  const who = role === 'user' ? 'user' : 'assistant';
  const record = { kind: 'message', id, role: who, text: '', done: false, ...bubble(who, '') };
  if (who === 'user') {
    if (ctx.hasId) state.lastUserPos = Math.max(state.lastUserPos, ctx.pos);
    // the message this page sent and already shows: the stream's copy takes its place
    const index = state.pending.findIndex((p) => p.pos <= ctx.pos);
    if (index >= 0) state.pending.splice(index, 1)[0].el.replaceWith(record.el);
  }
  placeAt(record.el, ctx.pos);
  record.unrecorded = !ctx.hasId;
  state.items.set(key, record);
  return record;
}

// Appends a delta to a message's text or a tool call's arguments. Live deltas (no id) come as
// the model writes; the recorded text then brings only the rest, unless it comes whole.
function addText(record, field, delta, ctx) {
  if (typeof delta !== 'string' || record.done) return record;
  if (ctx.hasId && record.whole) {
    record[field] = '';
    record.whole = false;
  }
  record[field] += delta;
  if (record.kind === 'message') {
    recorded(record, ctx);
    if (!record.el.isConnected) placeAt(record.el, ctx.pos);
    if (!ctx.hasId) state.streaming.add(record.id);
    record.el.classList.toggle('streaming', !ctx.hasId);
    stick(() => { record.textEl.textContent = record.text; });
    updateBusy();
  }
  return record;
}

function endMessage(record) {
  if (record && !record.done) settle(record, true);
}

// An END (`done`), or the end of a run: a message streamed live but not recorded then is put
// away until it goes on (it was the next run's) or for good (its step was cancelled or failed).
function settle(record, done) {
  record.done = done;
  record.el.classList.remove('streaming');
  state.streaming.delete(record.id);
  // nothing said (a response of tool calls only)
  if (!record.text || record.unrecorded) stick(() => record.el.remove());
  updateBusy();
}

function updateBusy() {
  // while a reply streams in, screen readers wait for it whole instead of every token
  $('conversation').setAttribute('aria-busy', String(state.streaming.size > 0));
}

function addNote(text, ctx, kind = 'info') {
  const last = $('conversation').lastElementChild;
  if (last?.classList.contains('note') && last.textContent === text) return;
  placeAt(h('li', { class: `note ${kind}`, text }), ctx.pos);
}

function ensureTool(id, ctx, name) {
  const key = `t:${id}`;
  let record = state.items.get(key);
  if (!record) {
    record = {
      kind: 'tool', id, name: name || 'tool', args: '', status: 'pending', result: undefined,
      nameEl: h('span', { class: 'tool-name' }), argsEl: h('code', { class: 'tool-args' }),
      badgeEl: h('span', { class: 'badge' }), summaryEl: h('summary'), outEl: h('pre'),
    };
    record.details = h('details', { hidden: true }, record.summaryEl, record.outEl);
    record.el = h('li', { class: 'tool', 'data-testid': 'tool-call', 'data-status': 'pending' },
      h('div', { class: 'tool-head' }, h('span', { class: 'tool-icon', 'aria-hidden': 'true', text: '⚙' }),
        record.nameEl, record.argsEl, record.badgeEl),
      record.details);
    state.items.set(key, record);
    placeAt(record.el, ctx.pos);
  } else if (name) {
    record.name = name;
  }
  return renderTool(record);
}

function toolResult(record, content) {
  const value = typeof content === 'string' ? attempt(() => JSON.parse(content), content) : content;
  const keys = value && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [];
  const unrun = keys.length > 0 && keys.every((key) => OUTCOME_KEYS.has(key));
  record.status = (unrun && keys.map((key) => OUTCOMES[key]).find(Boolean)) || 'completed';
  record.result = value;
  renderTool(record);
}

function renderTool(record) {
  record.el.dataset.status = record.status;
  record.nameEl.textContent = record.name;
  // arguments arrive as JSON text, maybe in pieces: shown compact once whole
  record.argsEl.textContent = attempt(() => JSON.stringify(JSON.parse(record.args)), record.args);
  record.badgeEl.textContent = TOOL_STATUS[record.status] || record.status;
  record.badgeEl.className = `badge t-${record.status}`;
  record.details.hidden = record.result === undefined;
  record.summaryEl.textContent = record.status === 'completed' ? 'Result' : 'Outcome';
  record.outEl.textContent = record.details.hidden ? '' : pretty(record.result);
  return record;
}

// -- approvals and cancelling -----------------------------------------------------------------

// Approvals are keyed by the call id the approval endpoint takes: `call_id` on the stream,
// where `tool_call_id` names the call's card (the two differ when a provider reused an id).
function approvalAsked(v, pos, message) {
  const id = v.call_id ?? v.tool_call_id;
  if (!id) return;
  const { tool, arguments: args, expires_at: expiresAt, retry_of: retryOf } = v;
  upsertApproval(id, { tool, args, expiresAt, retryOf, message, pos });
  const record = state.items.get(`t:${v.tool_call_id}`);
  if (record) renderTool(Object.assign(record, { status: 'awaiting_approval' }));
}

// The approvals waiting as of `version` (a detail's or a snapshot's): the others asked by then
// are gone. What the stream has shown since is newer than such a list, which then says nothing.
function syncApprovals(list, version) {
  if (typeof version !== 'number' || version < state.streamPos) return;
  const waiting = new Set(list.map((a) => a.call_id ?? a.tool_call_id));
  for (const approval of [...state.approvals.values()]) {
    if (!waiting.has(approval.id) && approval.pos <= version) dropApproval(approval.id);
  }
  for (const a of list) approvalAsked(a, a.position);
}

function upsertApproval(id, fields) {
  let approval = state.approvals.get(id);
  if (!approval) {
    const reasonId = uid('reason');
    const infoEl = h('div', { class: 'approval-info', id: uid('approval') });
    const reasonEl = h('input', { id: reasonId, type: 'text', maxlength: '500', autocomplete: 'off' });
    approval = { id, pos: -1, infoEl, reasonEl };
    const button = (decision, label, extra) => h('button', {
      type: 'button', 'data-testid': decision, onclick: () => decide(approval, decision), ...extra,
    }, label);
    approval.buttons = [button('approve', 'Approve'), button('reject', 'Reject', { class: 'danger' })];
    approval.el = h('div', { class: 'approval', role: 'group', 'aria-labelledby': infoEl.id }, infoEl,
      h('label', { for: reasonId, text: 'Reason, if you reject (optional)' }), reasonEl,
      h('div', { class: 'actions' }, approval.buttons));
    state.approvals.set(id, approval);
  }
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    approval[key] = key === 'pos' ? Math.max(finite(approval.pos), value) : value;
  }
  const call = approval.tool ? `${approval.tool}(${JSON.stringify(approval.args ?? {})})` : id;
  const ask = approval.retryOf
    ? 'It may have run once already (its outcome is unknown): run it again?'
    : 'Allow it to run?';
  approval.infoEl.replaceChildren(...[
    h('p', { class: 'approval-what' }, h('code', { text: call })),
    h('p', { text: approval.message || ask }),
    approval.expiresAt
      ? h('p', { class: 'muted', text: `Declined automatically at ${fmtTime(approval.expiresAt)}.` })
      : null,
  ].filter(Boolean));
  renderApprovals();
}

function dropApproval(id) {
  state.approvals.get(id)?.el.remove();
  state.approvals.delete(id);
  renderApprovals();
}

function renderApprovals() {
  const box = $('approvals');
  if (!box.firstElementChild) box.append(h('h3', { text: 'Waiting for your approval' }));
  for (const approval of state.approvals.values()) {
    if (!approval.el.isConnected) box.append(approval.el);
  }
  box.hidden = state.approvals.size === 0;
  renderRunning();
}

function decide(approval, decision) {
  const { threadId, gen } = state;
  const reason = approval.reasonEl.value.trim();
  const body = decision === 'reject' && reason ? { decision, reason } : { decision };
  return busy(approval.buttons, async () => {
    await api('POST', threadPath(threadId, `/approvals/${encodeURIComponent(approval.id)}`), body);
    if (gen !== state.gen) return;
    dropApproval(approval.id);
    notify(decision === 'approve' ? 'Approved: the call runs now.' : 'Rejected: the call will not run.');
    refreshDetail();
  });
}

function setRunning(on) {
  state.running = on;
  renderRunning();
}

function renderRunning() {
  $('cancel').hidden = !(state.threadId && (state.running || state.approvals.size > 0));
}

function cancelRun() {
  const { threadId, gen } = state;
  return busy([$('cancel')], async () => {
    const answer = await api('POST', threadPath(threadId, '/cancel'));
    if (gen !== state.gen) return;
    if (answer?.message) notify(answer.message);
    if (answer && !answer.cancelled) setRunning(false);
  });
}

// -- sending ----------------------------------------------------------------------------------

async function send() {
  const composer = $('composer');
  const text = composer.value;
  if (!text.trim() || $('send').disabled) return;
  const { threadId, gen } = state;
  await busy([$('send')], async () => {
    if (!threadId) { // the first message starts the thread
      const created = await api('POST', '/v1/threads', { message: text });
      composer.value = '';
      await openThread(created.thread_id, { pendingText: text });
      return loadThreads(false);
    }
    const accepted = await api('POST', threadPath(threadId, '/messages'), { message: text });
    composer.value = '';
    if (gen !== state.gen) return;
    addPending(text, accepted.position);
    setRunning(true);
  });
  composer.focus();
}

// -- the inspector ----------------------------------------------------------------------------

function selectTab(name, focus = false) {
  state.tab = name;
  for (const key of ['chat', 'inspector']) {
    const tab = $(`tab-${key}`);
    tab.setAttribute('aria-selected', String(key === name));
    tab.tabIndex = key === name ? 0 : -1;
    $(`panel-${key}`).hidden = key !== name;
    if (key === name && focus) tab.focus();
  }
  renderInspector();
}

function renderInspector() {
  $('inspector-empty').hidden = Boolean(state.threadId);
  $('inspector-body').hidden = !state.threadId;
  if (!state.threadId || state.tab !== 'inspector') return;
  renderUsage();
  loadMe();
  if (!state.eventsLoaded) {
    state.eventsLoaded = true;
    refreshEvents();
  }
}

const pairs = (list) => list.flatMap(([term, value]) => [h('dt', { text: term }), h('dd', { text: value })]);

function renderUsage() {
  const detail = state.detail;
  if (!detail) return $('thread-usage').replaceChildren(...pairs([['Cost', '—']]));
  const { token_usage: t, counts: c, cost } = detail;
  const unpriced = cost.unpriced_models.length ? ` (no price for ${cost.unpriced_models.join(', ')})` : '';
  $('thread-usage').replaceChildren(...pairs([
    ['Cost', usd(cost.usd) + unpriced],
    ['Tokens', `${num(t.total_tokens)}: ${num(t.input_tokens)} in (${num(t.cached_input_tokens)} cached), `
      + `${num(t.output_tokens)} out (${num(t.thinking_tokens)} thinking)`],
    ...cost.by_model.map((m) => [m.model, `${num(m.calls)} calls, ${num(m.input_tokens)} in / `
      + `${num(m.output_tokens)} out, ${m.priced ? usd(m.usd) : 'no price'}`]),
    ['Activity', `${num(c.user)} user / ${num(c.assistant)} assistant messages, ${num(c.tool_calls)} tool `
      + `calls (${num(c.tool_errors)} failed), ${num(c.llm_calls)} model calls`],
  ]));
}

async function loadMe() {
  try {
    state.me = await api('GET', '/v1/me');
    state.meError = '';
    $('who').textContent = state.me.user_id ?? '';
  } catch (error) {
    if (error.status === 401) return fail(error);
    state.me = null;
    state.meError = error.message;
  }
  const me = state.me;
  $('user-usage').replaceChildren(...pairs(me ? [
    ['Signed in as', String(me.user_id ?? '')],
    ['Total cost', usd(me.cost?.usd)],
    ['Threads', num(me.threads)],
    ...(me.cost?.by_model ?? []).map((m) => [m.model,
      `${num(m.calls)} calls, ${m.priced ? usd(m.usd) : 'no price'}`]),
  ] : [['Total cost', state.meError || '—']]));
}

// One load at a time, in order: each goes on from the last event the one before it added.
function refreshEvents() {
  const { gen } = state;
  state.eventsChain = state.eventsChain
    .then(() => gen === state.gen && loadEvents(gen))
    .catch((error) => gen === state.gen && fail(error));
}

async function loadEvents(gen) {
  for (let after = state.eventsAfter; ;) {
    const page = await api('GET', threadPath(state.threadId, `/events?after=${after}&limit=500`));
    if (gen !== state.gen) return;
    for (const event of page.events) {
      if (event.position <= state.eventsAfter) continue;
      state.events.push(event);
      state.eventsAfter = event.position;
      addEventRow(event);
    }
    if ((page.next_after ?? after) <= after) break;
    after = page.next_after;
  }
  const types = [...new Set(state.events.map((e) => e.type))].sort();
  $('event-types').replaceChildren(...types.map((type) => h('option', { value: type })));
  applyFilter();
}

function eventCells(event) {
  const data = event.data || {};
  const step = data.step_id ?? event.metadata?.step_id ?? '';
  const usage = data.token_usage && typeof data.token_usage === 'object' ? data.token_usage : null;
  const cost = data.cost_usd ?? data.usd ?? data.cost;
  const dollars = cost && typeof cost === 'object' ? cost.usd : cost;
  return [
    h('td', { class: 'type', text: event.type }),
    h('td', {}, h('time', { datetime: event.time, title: event.time, text: fmtTime(event.time, true) })),
    h('td', { class: 'step', title: step || null, text: step }),
    h('td', { text: data.attempt ?? '' }),
    h('td', {}, data.lease_expires_at ? h('time', {
      datetime: data.lease_expires_at, title: data.lease_expires_at, text: fmtTime(data.lease_expires_at, true),
    }) : null),
    h('td', { text: usage ? `${num(usage.input_tokens)} in / ${num(usage.output_tokens)} out` : '' }),
    h('td', { text: typeof data.latency_ms === 'number' ? num(Math.round(data.latency_ms)) : '' }),
    h('td', { text: typeof dollars === 'number' ? usd(dollars) : '' }),
  ];
}

function addEventRow(event) {
  const p = event.position;
  const row = h('tr', {
    class: 'event-row', 'data-testid': 'event-row', 'data-type': event.type, 'data-position': p,
    onclick: (e) => { if (!e.target.closest('button')) toggleRow(event, row); },
  },
  h('td', {}, h('button', {
    type: 'button', class: 'expand quiet', 'aria-expanded': 'false',
    'aria-label': `${p}: show data and metadata`, onclick: () => toggleRow(event, row),
  }, String(p))),
  eventCells(event),
  h('td', { class: 'row-actions' },
    h('button', {
      type: 'button', class: 'small', 'aria-label': `Decision at position ${p}`,
      onclick: () => showDecision(event, row),
    }, 'Decision'),
    h('button', {
      type: 'button', class: 'small', 'data-testid': 'fork', 'aria-label': `Fork from position ${p}`,
      onclick: () => fork(p),
    }, 'Fork')));
  $('event-rows').append(row);
}

function toggleRow(event, row, open) {
  let detail = state.detailRows.get(event.position);
  const show = open ?? !(detail && !detail.hidden);
  if (!detail && show) {
    const block = (title, value) => h('section', {}, h('h4', { text: title }), h('pre', { text: pretty(value) }));
    detail = h('tr', { class: 'event-detail' }, h('td', { colspan: '10' },
      h('div', { class: 'detail-grid' }, block('data', event.data), block('metadata', event.metadata))));
    state.detailRows.set(event.position, detail);
    row.after(detail);
  }
  if (detail) detail.hidden = !show || row.hidden;
  row.querySelector('.expand').setAttribute('aria-expanded', String(show));
  row.classList.toggle('open', show);
  return detail;
}

async function showDecision(event, row) {
  const grid = toggleRow(event, row, true).querySelector('.detail-grid');
  let out = grid.querySelector('[data-testid="decision"]');
  if (!out) {
    out = h('section', { 'data-testid': 'decision', class: 'decision', 'aria-live': 'polite' });
    grid.append(out);
  }
  const title = h('h4', { text: `decision at position ${event.position}` });
  out.replaceChildren(title, h('p', { text: 'Asking…' }));
  const { threadId, gen } = state;
  try {
    const answer = await api('GET', threadPath(threadId, `/decision?at=${event.position}`));
    if (gen !== state.gen) return;
    const said = [
      answer.kind, answer.step_id && `step ${answer.step_id}`, answer.attempt && `attempt ${answer.attempt}`,
      answer.not_before && `not before ${fmtTime(answer.not_before, true)}`,
    ].filter(Boolean).join(' · ');
    out.replaceChildren(title, h('p', { text: said + (answer.reason ? ` (${answer.reason})` : '') }),
      h('pre', { text: pretty(answer) }));
  } catch (error) {
    out.replaceChildren(title, h('p', { text: error.message }));
    fail(error);
  }
}

function fork(at) {
  return busy([], async () => {
    const forked = await api('POST', threadPath(state.threadId, '/fork'), { at });
    await loadThreads(false).catch(() => {});
    selectTab('chat');
    await openThread(forked.thread_id);
    notify(`This is a new thread, forked from position ${at}.`);
  });
}

function applyFilter() {
  const filter = $('type-filter').value.trim().toLowerCase();
  let shown = 0;
  for (const row of $('event-rows').querySelectorAll('tr.event-row')) {
    row.hidden = Boolean(filter) && !row.dataset.type.toLowerCase().includes(filter);
    if (!row.hidden) shown += 1;
    const detail = state.detailRows.get(Number(row.dataset.position));
    if (detail) detail.hidden = row.hidden || !row.classList.contains('open');
  }
  const total = state.events.length;
  $('event-count').textContent = filter ? `${shown} of ${total} events` : `${total} events`;
}

// -- wiring -----------------------------------------------------------------------------------

function bind() {
  const on = (id, type, fn) => $(id).addEventListener(type, fn);
  on('signin-form', 'submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (token) signIn(token);
  });
  on('sign-out', 'click', () => signOut());
  on('alert-close', 'click', () => showAlert(''));
  on('new-thread', 'click', newDraft);
  on('more-threads', 'click', () => loadThreads(true).catch(fail));
  on('threads-toggle', 'click', () => setSidebar($('sidebar').dataset.open !== 'true'));
  on('cancel', 'click', cancelRun);
  on('composer-form', 'submit', (e) => {
    e.preventDefault();
    send();
  });
  on('composer', 'keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  on('tab-chat', 'click', () => selectTab('chat'));
  on('tab-inspector', 'click', () => selectTab('inspector'));
  document.querySelector('[role="tablist"]').addEventListener('keydown', (e) => {
    const other = state.tab === 'chat' ? 'inspector' : 'chat';
    const target = { Home: 'chat', End: 'inspector', ArrowLeft: other, ArrowRight: other }[e.key];
    if (!target) return;
    e.preventDefault();
    selectTab(target, true);
  });
  on('type-filter', 'input', applyFilter);
}

function start() {
  bind();
  const params = fragment();
  const token = params.get('token');
  if (token === null) {
    const saved = recall();
    return saved ? signIn(saved) : showSignIn();
  }
  // the token must not stay in the address bar, nor in its history
  params.delete('token');
  setHash(params);
  showSignIn();
  $('token').value = token;
  $('sign-in').focus();
}

start();
