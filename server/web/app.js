// The browser client: login, conversations, reliable delivery, commands.
// protocol.js carries frames, store.js remembers, files.js moves files,
// ui.js draws, commands.js reads typed lines. This file owns the session:
// what was shown (per stream), what is unacknowledged (the outbox), when to
// reconnect and when not to (taken over, kicked, logged out).

import { Connection, CLOSING_CODES } from './protocol.js';
import { AccountStore, session } from './store.js';
import { Files } from './files.js';
import { $, h, messageElement, dayElement, setDeliveryState, notice, announce, shortTime } from './ui.js';
import { parseLine, complete, helpLines } from './commands.js';

const PUBLIC = '*';
const MAX_TEXT = 4096; // bytes, the server's default --max-text
const HISTORY_PAGE = 50;
const HISTORY_MAX = 500; // the most one history request returns
const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 30_000;

const encoder = new TextEncoder();
const lower = (s) => s.toLowerCase();

const S = {
  me: null, // the nickname as the server spells it (welcome.nick)
  store: null, // AccountStore of this account on this server
  nick: '', // as typed at login
  password: '',
  register: false,
  auto: false, // logged in before in this tab: errors retry instead of asking
  loggedIn: false, // the current connection got its welcome
  stopped: false, // no reconnect (logged out, taken over, kicked)
  backoff: BACKOFF_MIN,
  retryTimer: null,
  retryAt: 0,
  convs: new Map(), // lower(conv id) → conversation
  open: PUBLIC,
  online: new Map(), // lower(nick) → {nick, away}
  groups: new Map(), // lower('#name') → '#Name'
  replayExpect: 0, // messages of the current replay page still to come
  replayLeft: 0, // messages waiting after this page (`more`)
  caughtUp: 0,
  receivedSeq: null, // highest own-stream seq shown, not yet `received`
  byCid: new Map(), // cid → own record
  away: '',
  loginWaitTimer: null,
};

// ---- the connection ----------------------------------------------------------

const conn = new Connection({
  onOpen: () => sendLogin(),
  onFrame: (frame) => onFrame(frame),
  onChunk: (frame, bytes) => files.chunk(frame, bytes),
  onClose: (why) => onClose(why),
});
const files = new Files(conn, (text) => attention(null, text, true));

function setStatus(state, text) {
  const el = $('status');
  el.dataset.state = state;
  el.textContent = text;
}

function connect() {
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  S.stopped = false;
  setStatus('connecting', S.auto ? 'connecting…' : 'connecting…');
  conn.connect();
}

function sendLogin() {
  setStatus('connecting', 'logging in…');
  const frame = { type: 'login', nick: S.nick, password: S.password, register: S.register };
  if (S.store.lastSeq !== null) frame.last_seq = S.store.lastSeq;
  if (S.store.lastPublic !== null) frame.last_public = S.store.lastPublic;
  conn.request(frame).then(welcomed, loginRefused);
}

function onClose(why) {
  const wasIn = S.loggedIn;
  S.loggedIn = false;
  S.replayExpect = S.replayLeft = 0;
  if (S.stopped) {
    setStatus('offline', 'offline');
    return;
  }
  if (!S.auto) {
    // The very first login never got through: say so on the form.
    showLoginError(`cannot reach the server: ${why}`);
    setStatus('offline', 'offline');
    return;
  }
  if (wasIn) notice(`connection lost — reconnecting… (${why})`, 'error');
  scheduleReconnect();
}

/** The next try after 1 s, 2 s, 4 s … 30 s, each ±25 % so a restarted server is not stormed. */
function scheduleReconnect(delay) {
  const base = delay ?? S.backoff;
  if (delay === undefined) S.backoff = Math.min(BACKOFF_MAX, S.backoff * 2);
  const wait = delay ?? Math.round(base * (0.75 + Math.random() * 0.5));
  S.retryAt = Date.now() + wait;
  clearTimeout(S.retryTimer);
  S.retryTimer = setTimeout(connect, wait);
  const tick = () => {
    if (!S.retryTimer || S.loggedIn || S.stopped) return;
    const left = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
    if ($('status').dataset.state === 'offline') setStatus('offline', `offline — reconnecting in ${left} s`);
    if (left > 0) setTimeout(tick, 1000);
  };
  setStatus('offline', `offline — reconnecting in ${Math.ceil(wait / 1000)} s`);
  setTimeout(tick, 1000);
}

/** Seconds a refusal asks to wait ("try again in 42 s", "in 3 min"). */
function waitFrom(reason, fallback) {
  const s = /(\d+)\s*s\b/.exec(reason || '');
  if (s) return Number(s[1]);
  const m = /(\d+)\s*min/.exec(reason || '');
  if (m) return Number(m[1]) * 60;
  return fallback;
}

function loginRefused(err) {
  if (err.code === 'connection_lost') return; // onClose says it
  conn.disconnect();
  if (S.auto && (err.code === 'too_many_attempts' || err.code === 'busy')) {
    // A refusal for now: wait as long as the server says, then try again.
    const secs = waitFrom(err.message, err.code === 'busy' ? 5 : 60);
    notice(`${err.message} — trying again in ${secs} s`, 'error');
    scheduleReconnect(secs * 1000);
    return;
  }
  if (!S.auto && err.code === 'no_such_user') {
    // A new nickname: as the terminal client, ask for the password twice
    // before creating the account, so a typo creates nothing.
    $('login-confirm').hidden = false;
    showLoginError(`${S.nick} is a new nickname: type its password again to create the account (or choose another nickname)`);
    $('login-password2').focus();
    setStatus('offline', 'offline');
    return;
  }
  S.stopped = true;
  if (S.auto) session.clear(); // e.g. the password was changed elsewhere: ask for it
  setStatus('offline', 'offline');
  if (err.code === 'too_many_attempts') {
    const secs = waitFrom(err.message, 60);
    holdLogin(secs);
  }
  showLogin(err.message);
}

/** Keeps the login button off while the server's throttle lasts. */
function holdLogin(secs) {
  const button = $('login-submit');
  const until = Date.now() + secs * 1000;
  clearInterval(S.loginWaitTimer);
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(S.loginWaitTimer);
      button.disabled = false;
      button.textContent = 'Log in';
    } else {
      button.disabled = true;
      button.textContent = `Log in (wait ${left} s)`;
    }
  };
  tick();
  S.loginWaitTimer = setInterval(tick, 1000);
}

// ---- login form ----------------------------------------------------------------

function showLoginError(text) {
  $('login-error').textContent = text;
}

function showLogin(error) {
  $('app').hidden = true;
  $('login').hidden = false;
  showLoginError(error || '');
  $('login-nick').value = S.nick;
  $('login-password').value = '';
  $('login-password').focus();
}

function startSession(nick, password, register) {
  if (!S.store || lower(S.nick) !== lower(nick)) {
    S.store = new AccountStore(nick);
    resetConversations();
  }
  S.nick = nick;
  S.password = password;
  S.register = register;
  connect();
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const nick = $('login-nick').value.trim();
  const password = $('login-password').value;
  const confirm = $('login-confirm');
  if (!nick || !password) {
    showLoginError('type a nickname and a password');
    return;
  }
  let register = false;
  if (!confirm.hidden) {
    if (lower(nick) !== lower(S.nick)) {
      confirm.hidden = true; // another nickname: start over
    } else if ($('login-password2').value !== password) {
      showLoginError('the two passwords differ: type the same one twice');
      $('login-password2').value = '';
      return;
    } else {
      register = true;
    }
  }
  showLoginError('');
  S.auto = false;
  startSession(nick, password, register);
});

$('login-nick').addEventListener('input', () => {
  $('login-confirm').hidden = true;
  $('login-password2').value = '';
});

// ---- the welcome ---------------------------------------------------------------

function welcomed(w) {
  S.loggedIn = true;
  S.auto = true;
  S.backoff = BACKOFF_MIN;
  S.register = false;
  session.save(S.nick, S.password);
  S.me = w.nick;
  $('me').textContent = w.nick;
  $('login').hidden = true;
  $('app').hidden = false;
  $('login-confirm').hidden = true;
  setStatus('online', 'online');
  if (w.new_account) notice(`account ${w.nick} created: log in with the same password next time`);

  S.online = new Map((w.online || []).map((n) => [lower(n), { nick: n, away: '' }]));
  renderOnline();
  for (const g of w.groups || []) addGroup(g);
  // Groups we were removed from while away are gone from welcome.groups.
  const now = new Set((w.groups || []).map(lower));
  for (const key of [...S.groups.keys()]) if (!now.has(key)) removeGroup(key);

  // Nothing public shown yet: resume the public room from now, so a drop
  // right after logging in loses nothing said meanwhile.
  if (S.store.lastPublic === null && w.public_seq) {
    S.store.lastPublic = w.public_seq;
    S.store.save();
  }
  S.caughtUp = 0;
  S.replayExpect = w.replay || 0;
  S.replayLeft = w.replay_left || 0;
  if (S.replayExpect === 0) replayPageDone();

  // The outbox, in the order typed, with the same cids.
  for (const entry of S.store.outbox) transmit(entry);
  if (S.away) conn.request({ type: 'away', text: S.away }).catch(() => {});
  conn.request({ type: 'online' }).then(onlineAnswer, () => {});
  files.resume();
  if (!S.shownOnce) {
    S.shownOnce = true;
    openConv(S.open); // draws it and loads its history
  } else {
    const open = S.convs.get(S.open);
    if (open && !open.loaded) loadHistory(open);
    renderSidebar();
  }
}

function replayPageDone() {
  if (S.replayLeft > 0) {
    conn.request({ type: 'more' }).then(
      (r) => {
        S.replayExpect = r.count;
        S.replayLeft = r.left;
        if (S.replayExpect === 0) replayPageDone();
      },
      () => {},
    );
  } else if (S.caughtUp > 0) {
    notice(`${S.caughtUp} message${S.caughtUp === 1 ? '' : 's'} caught up`);
    S.caughtUp = 0;
  }
}

// ---- frames --------------------------------------------------------------------

function onFrame(f) {
  if (files.frame(f)) return;
  switch (f.type) {
    case 'message': {
      const caughtUp = S.replayExpect > 0;
      if (caughtUp) S.caughtUp += 1;
      showLive(f, caughtUp);
      if (caughtUp && --S.replayExpect === 0) replayPageDone();
      break;
    }
    case 'delivered': {
      const rec = S.byCid.get(f.cid);
      if (rec) setRecState(rec, 'delivered', '');
      break;
    }
    case 'presence':
      for (const n of f.joined || []) if (!S.online.has(lower(n))) S.online.set(lower(n), { nick: n, away: '' });
      for (const l of f.left || []) S.online.delete(lower(l.nick));
      if (f.joined_more || f.left_more) conn.request({ type: 'online' }).then(onlineAnswer, () => {});
      renderOnline();
      break;
    case 'kicked':
      if (S.me && lower(f.nick) === lower(S.me)) {
        S.stopped = true;
        conn.disconnect();
        setStatus('offline', 'removed by the operator');
        showLogin(`the operator removed you: ${f.reason}`);
      } else {
        S.online.delete(lower(f.nick));
        renderOnline();
        notice(`${f.nick} was removed by the operator (${f.reason})`);
      }
      break;
    case 'announce':
      notice(`announcement: ${f.text}`, 'announce');
      attention(null, `announcement: ${f.text}`, false);
      break;
    case 'shutdown':
      // The server may come back: the close that follows reconnects.
      notice(`the server is stopping (${f.reason}); reconnecting when it is back`, 'error');
      break;
    case 'group_changed':
      if (f.added) {
        addGroup(f.group);
        notice(`${f.by} added you to ${f.group}`);
      } else {
        removeGroup(lower(f.group));
        notice(`${f.by} removed you from ${f.group}`);
      }
      renderSidebar();
      break;
    case 'error':
      if (f.code === 'taken_over') {
        // Never reconnect by ourselves: two clients would take turns forever.
        S.stopped = true;
        conn.disconnect();
        setStatus('offline', 'taken over');
        showLogin(`logged in elsewhere: ${f.reason}`);
      } else if (CLOSING_CODES.has(f.code)) {
        notice(`disconnected by the server: ${f.reason}`, 'error');
      } else {
        notice(`server: ${f.reason || f.code}`, 'error');
      }
      break;
    default:
      break; // a frame this page does not know yet: ignored, as the protocol says
  }
}

function onlineAnswer(o) {
  S.online = new Map(o.users.map((n) => [lower(n), { nick: n, away: (o.away && o.away[n]) || '' }]));
  renderOnline();
  return o;
}

// ---- conversations -------------------------------------------------------------

function resetConversations() {
  S.convs = new Map();
  S.groups = new Map();
  S.byCid = new Map();
  S.open = PUBLIC;
  S.shownOnce = false;
  conv(PUBLIC);
  for (const c of S.store.convs) conv(c);
  // Messages typed before a reload, still unacknowledged: shown pending.
  for (const e of S.store.outbox) {
    const c = conv(convIdOf(e.receiver));
    addRecord(c, ownRecord(e, 'pending'));
  }
}

/** The conversation a receiver names: '*', '#group' or '@nick'. */
function convIdOf(receiver) {
  if (receiver === PUBLIC) return PUBLIC;
  return receiver.startsWith('#') ? receiver : `@${receiver}`;
}

/** The conversation with this id, made if new. */
function conv(id) {
  const key = lower(id);
  let c = S.convs.get(key);
  if (!c) {
    c = { id, key, recs: [], keys: new Set(), unread: 0, attention: 0, loaded: false, loading: false, atStart: false, served: 0 };
    S.convs.set(key, c);
    S.store.rememberConv(id);
    if ($('conversations')) renderSidebar();
  }
  return c;
}

/** Where a conversation's messages go (`receiver` of a message, `with` of history). */
const receiverOf = (c) => (c.id === PUBLIC ? PUBLIC : c.id.startsWith('#') ? c.id : c.id.slice(1));

/** A private conversation with nobody (no such account): off the sidebar. */
function forgetConv(c) {
  S.convs.delete(c.key);
  S.store.forgetConv(c.id);
  if (S.open === c.key) openConv(PUBLIC);
  renderSidebar();
}

function addGroup(name) {
  S.groups.set(lower(name), name);
  conv(name);
}

function removeGroup(key) {
  S.groups.delete(key);
  if (S.open === key) openConv(PUBLIC);
  S.convs.delete(key);
  renderSidebar();
}

const recKey = (sender, time, text) => `${lower(sender)}\n${time}\n${text}`;

function ownRecord(entry, state) {
  const rec = { own: true, local: true, cid: entry.cid, sender: S.me || S.nick, text: entry.text, time: entry.time, state, key: `cid:${entry.cid}` };
  S.byCid.set(entry.cid, rec);
  return rec;
}

function mentions(text) {
  if (!S.me) return false;
  const nick = S.me.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\p{L}\\p{N}_])@?${nick}($|[^\\p{L}\\p{N}_])`, 'iu').test(text);
}

/** Adds `rec` to `c` unless it is shown already; true if added. */
function addRecord(c, rec) {
  if (c.keys.has(rec.key)) return false;
  c.keys.add(rec.key);
  rec.conv = c.id;
  const last = c.recs[c.recs.length - 1];
  c.recs.push(rec);
  if (last && last.time > rec.time && !rec.local) {
    c.recs.sort((a, b) => a.time - b.time);
    if (S.open === c.key) renderMessages(true);
  } else if (S.open === c.key) {
    appendMessage(rec, last);
  }
  return true;
}

/** A `message` event: shown once per seq, then acknowledged (own stream). */
function showLive(f, caughtUp) {
  const isPublic = f.receiver === PUBLIC;
  if (!S.store.markShown(isPublic, f.seq)) return; // already shown: a resend or a replay
  const own = lower(f.sender) === lower(S.me);
  const id = isPublic ? PUBLIC : f.receiver.startsWith('#') ? f.receiver : own ? `@${f.receiver}` : `@${f.sender}`;
  if (id.startsWith('#') && !S.groups.has(lower(id))) addGroup(id);
  const c = conv(id);
  if (!isPublic) scheduleReceived(f.seq);
  if (own) {
    // Our own public or group message coming back: it is the pending line.
    const mine = c.recs.find((r) => r.own && r.local && r.seq === undefined && r.text === f.text);
    if (mine) {
      mine.seq = f.seq;
      c.keys.delete(mine.key);
      mine.key = recKey(f.sender, f.time, f.text);
      c.keys.add(mine.key);
      mine.time = f.time;
      mine.local = false;
      if (mine.state === 'pending') mine.state = 'stored';
      refreshRecord(mine);
      return;
    }
  }
  const rec = {
    seq: f.seq,
    sender: f.sender,
    text: f.text,
    time: f.time,
    own,
    state: own ? 'stored' : undefined,
    away: Boolean(f.away),
    mention: !own && mentions(f.text),
    key: recKey(f.sender, f.time, f.text),
  };
  if (!addRecord(c, rec) || own) return;
  const visible = S.open === c.key && !document.hidden;
  if (!visible) c.unread += 1;
  const where = c.id === PUBLIC ? '' : c.id.startsWith('#') ? ` in ${c.id}` : ' (private)';
  announce(`${f.sender}${where}: ${f.text}`);
  if (rec.mention || c.id.startsWith('@')) attention(visible ? null : c, `${f.sender}${where}: ${f.text}`, !caughtUp);
  renderSidebar();
}

function scheduleReceived(seq) {
  const first = S.receivedSeq === null;
  S.receivedSeq = Math.max(S.receivedSeq ?? seq, seq);
  // One `received` for a burst: after the frames now queued are shown.
  if (first) {
    setTimeout(() => {
      if (S.receivedSeq !== null) conn.send({ type: 'received', seq: S.receivedSeq });
      S.receivedSeq = null;
    }, 0);
  }
}

/** A private message or a mention: count it in the title and maybe notify. */
function attention(c, text, notify) {
  if (c) c.attention += 1;
  else if (document.hidden) {
    // Not tied to a conversation (a file offer, an announcement).
    S.looseAttention = (S.looseAttention || 0) + 1;
  }
  updateTitle();
  if (notify && document.hidden && 'Notification' in window && Notification.permission === 'granted') {
    try {
      new Notification('chat', { body: text, tag: 'chat' });
    } catch {
      // Some browsers only allow notifications from a service worker.
    }
  }
}

function updateTitle() {
  let n = S.looseAttention || 0;
  for (const c of S.convs.values()) n += c.attention;
  document.title = n > 0 ? `(${n}) chat` : 'chat';
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) return;
  S.looseAttention = 0;
  const c = S.convs.get(S.open);
  if (c) {
    c.unread = 0;
    c.attention = 0;
  }
  updateTitle();
  renderSidebar();
});

// ---- sending -----------------------------------------------------------------

function say(receiver, text) {
  if (!text.trim()) return;
  if (encoder.encode(text).length > MAX_TEXT) {
    notice(`message too long: at most ${MAX_TEXT} bytes`, 'error');
    return false;
  }
  const entry = { cid: S.store.nextCid(), receiver, text, time: Date.now() };
  S.store.addToOutbox(entry);
  const c = conv(convIdOf(receiver));
  addRecord(c, ownRecord(entry, 'pending'));
  if (S.open !== c.key) openConv(c.key);
  if (S.loggedIn) transmit(entry);
  else notice('not connected: the message waits in the outbox and is sent when the connection is back');
  return true;
}

function transmit(entry) {
  conn
    .request({ type: 'message', receiver: entry.receiver, text: entry.text, cid: entry.cid })
    .then((ack) => {
      S.store.removeFromOutbox(entry.cid);
      const rec = S.byCid.get(entry.cid);
      if (rec && rec.state === 'pending') setRecState(rec, 'stored', ack.offline ? `${entry.receiver} is offline` : '');
    })
    .catch((err) => {
      if (err.code === 'connection_lost' || CLOSING_CODES.has(err.code)) return; // resent after the reconnect
      // Refused (no such user, muted, …): not retried, as in the terminal client.
      S.store.removeFromOutbox(entry.cid);
      const rec = S.byCid.get(entry.cid);
      if (rec) setRecState(rec, 'failed', `not sent: ${err.message}`);
      notice(`not sent to ${entry.receiver === PUBLIC ? 'everyone' : entry.receiver}: ${err.message}`, 'error');
    });
}

const STATE_ORDER = { pending: 0, stored: 1, delivered: 2, failed: 3 };

/** States only move forward (a late `ack` after `delivered` changes nothing). */
function setRecState(rec, state, detail) {
  if (STATE_ORDER[state] <= STATE_ORDER[rec.state || 'pending'] && state !== 'failed') return;
  rec.state = state;
  rec.stateDetail = detail;
  refreshRecord(rec);
}

// ---- rendering the open conversation -----------------------------------------

const elements = new WeakMap(); // record → its .msg in #messages

function appendMessage(rec, prev) {
  const box = $('messages');
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  if (!prev || new Date(prev.time).toDateString() !== new Date(rec.time).toDateString()) box.append(dayElement(rec.time));
  const el = messageElement(rec);
  elements.set(rec, el);
  box.append(el);
  if (stick || rec.own) box.scrollTop = box.scrollHeight;
}

function refreshRecord(rec) {
  const old = elements.get(rec);
  if (!old || !old.isConnected) return;
  const el = messageElement(rec);
  elements.set(rec, el);
  old.replaceWith(el);
}

/** Draws the open conversation again; `keep` keeps the view where it was (history prepended). */
function renderMessages(keep = false) {
  const box = $('messages');
  const fromBottom = box.scrollHeight - box.scrollTop;
  const c = S.convs.get(S.open);
  for (const el of [...box.children]) if (el.id !== 'load-earlier' && el.id !== 'history-start') el.remove();
  let prev = null;
  for (const rec of c ? c.recs : []) {
    if (!prev || new Date(prev.time).toDateString() !== new Date(rec.time).toDateString()) box.append(dayElement(rec.time));
    const el = messageElement(rec);
    elements.set(rec, el);
    box.append(el);
    prev = rec;
  }
  updateEarlier(c);
  box.scrollTop = keep ? box.scrollHeight - fromBottom : box.scrollHeight;
}

function updateEarlier(c) {
  const button = $('load-earlier');
  const start = $('history-start');
  const done = !c || c.atStart;
  button.hidden = done;
  button.disabled = Boolean(c && c.loading);
  button.textContent = c && c.loading ? 'Loading…' : 'Load earlier messages';
  start.hidden = !done || !c || !c.loaded;
  start.textContent = c && c.served >= HISTORY_MAX ? `the server gives at most the last ${HISTORY_MAX} messages` : 'the start of the conversation';
}

const convTitle = (c) => (c.id === PUBLIC ? 'Everyone' : c.id.startsWith('#') ? c.id : c.id.slice(1));

function openConv(key) {
  const c = S.convs.get(lower(key)) || conv(key);
  S.open = c.key;
  if (!document.hidden) {
    c.unread = 0;
    c.attention = 0;
  }
  updateTitle();
  $('conv-title').textContent = convTitle(c);
  $('conv-info').textContent = c.id === PUBLIC ? 'everyone online' : c.id.startsWith('#') ? 'group' : 'private conversation';
  $('members').hidden = !c.id.startsWith('#');
  $('input').placeholder = c.id === PUBLIC ? 'Message everyone — !help for commands' : `Message ${convTitle(c)}`;
  renderMessages();
  renderSidebar();
  closeSidebar();
  if (!c.loaded && S.loggedIn) loadHistory(c);
}

/** Loads the conversation's history: the first page, or `earlier` ones before what is shown. */
async function loadHistory(c, { limit } = {}) {
  if (c.loading) return;
  if (limit === undefined) {
    if (c.loaded && c.atStart) return;
    limit = Math.min(HISTORY_MAX, c.loaded ? c.served + HISTORY_PAGE : HISTORY_PAGE);
  }
  c.loading = true;
  if (S.open === c.key) updateEarlier(c);
  const frame = { type: 'history', limit };
  if (c.id !== PUBLIC) frame.with = receiverOf(c);
  try {
    const answer = await conn.request(frame);
    mergeHistory(c, answer.messages);
    c.served = Math.max(c.served, answer.messages.length);
    c.atStart = answer.messages.length < limit || limit >= HISTORY_MAX;
    c.loaded = true;
  } catch (err) {
    if (err.code !== 'connection_lost') notice(`history of ${convTitle(c)}: ${err.message}`, 'error');
    if (err.code === 'no_such_user' && c.id.startsWith('@')) forgetConv(c);
  } finally {
    c.loading = false;
    if (S.open === c.key) renderMessages(true);
  }
}

/** Adds history entries (no seq) not shown yet; our own pending lines absorb theirs. */
function mergeHistory(c, messages) {
  let added = false;
  for (const m of messages) {
    const key = recKey(m.sender, m.time, m.text);
    if (c.keys.has(key)) continue;
    const own = S.me && lower(m.sender) === lower(S.me);
    if (own) {
      // A line we showed when sending has no server time: match it by text.
      const mine = c.recs.find((r) => r.own && r.local && r.text === m.text && Math.abs(r.time - m.time) < 10 * 60_000);
      if (mine) {
        c.keys.delete(mine.key);
        mine.key = key;
        mine.time = m.time;
        mine.local = false;
        c.keys.add(key);
        continue;
      }
    }
    c.keys.add(key);
    c.recs.push({ sender: m.sender, text: m.text, time: m.time, own, state: own ? 'stored' : undefined, mention: !own && mentions(m.text), key, conv: c.id });
    added = true;
  }
  if (added) c.recs.sort((a, b) => a.time - b.time);
}

$('load-earlier').addEventListener('click', () => {
  const c = S.convs.get(S.open);
  if (c) loadHistory(c);
});

$('messages').addEventListener('scroll', () => {
  const box = $('messages');
  const c = S.convs.get(S.open);
  if (box.scrollTop < 40 && c && c.loaded && !c.atStart && !c.loading && S.loggedIn) loadHistory(c);
});

// ---- sidebar -------------------------------------------------------------------

function renderSidebar() {
  const list = $('conversations');
  const order = (c) => (c.id === PUBLIC ? 0 : c.id.startsWith('#') ? 1 : 2);
  const convs = [...S.convs.values()].sort((a, b) => order(a) - order(b) || a.key.localeCompare(b.key));
  list.replaceChildren(
    ...convs.map((c) => {
      const current = S.open === c.key;
      const online = c.id.startsWith('@') && S.online.has(lower(c.id.slice(1)));
      const button = h(
        'button',
        {
          type: 'button',
          class: `conv${c.unread ? ' has-unread' : ''}${c.attention ? ' has-attention' : ''}`,
          dataset: { conv: c.id },
          'aria-current': current ? 'true' : null,
          onclick: () => {
            openConv(c.key);
            $('input').focus();
          },
        },
        h('span', { class: 'conv-icon', 'aria-hidden': 'true' }, c.id === PUBLIC ? '#' : c.id.startsWith('#') ? '#' : online ? '●' : '○'),
        h('span', { class: 'conv-name' }, convTitle(c)),
        h('span', { class: 'unread', 'aria-label': c.unread ? `${c.unread} unread` : null }, c.unread ? String(c.unread) : ''),
      );
      return h('li', {}, button);
    }),
  );
}

function renderOnline() {
  const users = [...S.online.values()].sort((a, b) => a.nick.localeCompare(b.nick));
  $('online-count').textContent = `(${users.length})`;
  $('online').replaceChildren(
    ...users.map((u) => {
      const me = S.me && lower(u.nick) === lower(S.me);
      const li = h(
        'li',
        { dataset: { nick: u.nick, away: u.away ? u.away : null }, class: u.away ? 'away' : '' },
        h('span', { class: 'presence-dot', 'aria-hidden': 'true' }),
        me
          ? h('span', { class: 'nick' }, `${u.nick} (you)`)
          : h('button', { type: 'button', class: 'nick link', title: `message ${u.nick}`, onclick: () => { openConv(`@${u.nick}`); $('input').focus(); } }, u.nick),
        u.away ? h('span', { class: 'away-text' }, `away: ${u.away}`) : null,
      );
      return li;
    }),
  );
  renderSidebar();
}

function closeSidebar() {
  document.body.classList.remove('sidebar-open');
  $('menu').setAttribute('aria-expanded', 'false');
}

$('sidebar-close').addEventListener('click', () => {
  closeSidebar();
  $('menu').focus();
});

document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && document.body.classList.contains('sidebar-open')) {
    closeSidebar();
    $('menu').focus();
  }
});

$('menu').addEventListener('click', () => {
  const open = document.body.classList.toggle('sidebar-open');
  $('menu').setAttribute('aria-expanded', String(open));
  if (open) $('conversations').querySelector('button')?.focus();
});

// ---- the new-conversation panel ----------------------------------------------

$('new-conv').addEventListener('click', () => {
  const panel = $('new-conv-panel');
  panel.hidden = !panel.hidden;
  $('new-conv').setAttribute('aria-expanded', String(!panel.hidden));
  if (!panel.hidden) $('new-conv-name').focus();
});

$('new-conv-panel').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('new-conv-name').value.trim();
  if (!name) return;
  const create = event.submitter && event.submitter.id === 'new-conv-create';
  if (create || name.startsWith('#')) {
    const g = name.startsWith('#') ? name : `#${name}`;
    if (create) runGroup({ op: 'create', name: g, members: [], public: $('new-conv-public').checked });
    else if (S.groups.has(lower(g))) openConv(g);
    else runGroup({ op: 'join', name: g });
  } else {
    openConv(`@${name}`);
  }
  $('new-conv-name').value = '';
  $('new-conv-panel').hidden = true;
  $('new-conv').setAttribute('aria-expanded', 'false');
  $('input').focus();
});

$('browse-groups').addEventListener('click', () => runGroup({ op: 'list' }));

// ---- commands ------------------------------------------------------------------

function hint(text) {
  $('hint').textContent = text;
  $('hint').hidden = !text;
}

const ask = (frame) => conn.request(frame).catch((err) => {
  notice(err.code === 'connection_lost' ? `not connected: ${frame.type} not asked` : err.message, 'error');
  throw err;
});

function run(line) {
  const c = S.convs.get(S.open);
  const action = parseLine(line, c ? receiverOf(c) : PUBLIC);
  switch (action.kind) {
    case 'none':
      return true;
    case 'hint':
      hint(action.text);
      return false;
    case 'say':
      if (action.receiver !== PUBLIC && !action.receiver.startsWith('#') && S.me && lower(action.receiver) === lower(S.me)) {
        hint('that is you: private messages go to someone else');
        return false;
      }
      return say(action.receiver, action.text) !== false;
    case 'open':
      openConv(action.conv);
      return true;
    case 'help':
      for (const l of helpLines()) notice(l, 'help');
      return true;
    case 'online':
      ask({ type: 'online' })
        .then(onlineAnswer)
        .then((o) => notice(`${o.users.length} online: ${o.users.map((u) => (o.away && o.away[u] ? `${u} (away: ${o.away[u]})` : u)).join(', ')}`))
        .catch(() => {});
      return true;
    case 'away':
      ask(action.text ? { type: 'away', text: action.text } : { type: 'away' })
        .then(() => {
          S.away = action.text;
          $('me').classList.toggle('is-away', Boolean(S.away));
          $('me').title = S.away ? `away: ${S.away}` : '';
          notice(S.away ? `you are away: ${S.away}` : 'you are back');
        })
        .catch(() => {});
      return true;
    case 'history': {
      const target = action.target ? (action.target.startsWith('#') ? action.target : `@${action.target}`) : PUBLIC;
      const tc = conv(target);
      openConv(tc.key);
      loadHistory(tc, { limit: Math.min(HISTORY_MAX, action.limit) });
      if (action.limit > HISTORY_MAX) notice(`${action.limit} asked: showing the last ${HISTORY_MAX} (the most the server gives)`);
      return true;
    }
    case 'search':
      search(action.words, action.from);
      return true;
    case 'group':
      runGroup(action);
      return true;
    case 'send': {
      const to = action.to || (c && c.id !== PUBLIC ? receiverOf(c) : null);
      if (!to) {
        hint('files go to one person or a group: open their conversation, or type !send nick');
        return false;
      }
      pickFileFor(to);
      return true;
    }
    case 'accept':
      files.accept(action.id);
      return true;
    case 'reject':
      files.reject(action.id);
      return true;
    case 'password':
      openPasswordDialog();
      return true;
    case 'bye':
      logout();
      return true;
    default:
      return false;
  }
}

function describeGroup(g) {
  const info = g.group;
  return `${info.name} (${info.public ? 'public' : 'private'}, ${info.size} member${info.size === 1 ? '' : 's'}, owner ${info.owner}): ${g.members.join(', ')}; online: ${g.online.join(', ') || 'nobody'}`;
}

function runGroup(a) {
  switch (a.op) {
    case 'list':
      ask({ type: 'group_list' })
        .then((r) => {
          if (!r.groups.length) {
            notice('no groups yet: !group create <name> [--public] makes one');
            return;
          }
          for (const g of r.groups) {
            const line = notice(`${g.name} — ${g.public ? 'public' : 'private'}, ${g.size} member${g.size === 1 ? '' : 's'}, owner ${g.owner}${g.member ? ' (you are in it)' : ''}`);
            if (!g.member && g.public) {
              line.append(h('button', { type: 'button', class: 'link join-group', onclick: () => runGroup({ op: 'join', name: g.name }) }, `join ${g.name}`));
            }
          }
        })
        .catch(() => {});
      break;
    case 'create':
      ask({ type: 'group_create', name: a.name, members: a.members, public: a.public })
        .then((g) => {
          addGroup(g.group.name);
          notice(`created ${describeGroup(g)}`);
          openConv(g.group.name);
        })
        .catch(() => {});
      break;
    case 'add':
    case 'remove':
      ask({ type: `group_${a.op}`, name: a.name, members: a.members })
        .then((g) => notice(`${a.op === 'add' ? 'added to' : 'removed from'} ${describeGroup(g)}`))
        .catch(() => {});
      break;
    case 'join':
      ask({ type: 'group_join', name: a.name })
        .then((g) => {
          addGroup(g.group.name);
          notice(`joined ${describeGroup(g)}`);
          openConv(g.group.name);
        })
        .catch(() => {});
      break;
    case 'leave':
      ask({ type: 'group_leave', name: a.name })
        .then(() => {
          removeGroup(lower(a.name));
          notice(`you left ${a.name}`);
        })
        .catch(() => {});
      break;
    case 'members':
      ask({ type: 'group_members', name: a.name })
        .then((g) => notice(describeGroup(g)))
        .catch(() => {});
      break;
    default:
      break;
  }
}

$('members').addEventListener('click', () => {
  const c = S.convs.get(S.open);
  if (c && c.id.startsWith('#')) runGroup({ op: 'members', name: c.id });
});

function logout() {
  S.stopped = true;
  clearTimeout(S.retryTimer);
  const bye = S.loggedIn ? conn.request({ type: 'bye' }).catch(() => {}) : Promise.resolve();
  const done = () => {
    conn.disconnect();
    S.loggedIn = false;
    S.auto = false;
    session.clear();
    setStatus('offline', 'logged out');
    showLogin(S.store && S.store.outbox.length ? `${S.store.outbox.length} message(s) not yet stored wait in this browser's outbox; they are sent at your next login` : '');
  };
  // Wait a moment for the outbox to be stored and the bye to be answered.
  Promise.race([bye, new Promise((r) => setTimeout(r, 3000))]).then(done);
}

$('logout').addEventListener('click', logout);

// ---- search --------------------------------------------------------------------

async function search(wordsText, from) {
  const frame = { type: 'search', words: wordsText, limit: 50 };
  if (from) frame.from = from;
  const panel = $('search-panel');
  const results = $('search-results');
  panel.hidden = false;
  $('search-title').textContent = `Search “${wordsText}”${from ? ` from ${from}` : ''}`;
  results.replaceChildren(h('p', { class: 'muted' }, 'searching…'));
  try {
    const answer = await conn.request(frame);
    const me = S.me ? lower(S.me) : '';
    const items = answer.messages.map((m) => {
      const own = lower(m.sender) === me;
      const where = m.receiver === PUBLIC ? PUBLIC : m.receiver.startsWith('#') ? m.receiver : own ? `@${m.receiver}` : `@${m.sender}`;
      const el = messageElement({ sender: m.sender, text: m.text, time: m.time, own, state: 'stored', conv: where }, { showConv: true });
      el.tabIndex = 0;
      el.title = `open ${where === PUBLIC ? 'everyone' : where}`;
      const go = () => openConv(where);
      el.addEventListener('click', go);
      el.addEventListener('keydown', (e) => e.key === 'Enter' && go());
      return el;
    });
    results.replaceChildren(
      h('p', { class: 'muted', role: 'status' }, `${items.length} message${items.length === 1 ? '' : 's'}`),
      ...items,
    );
  } catch (err) {
    results.replaceChildren(h('p', { class: 'notice error' }, err.code === 'connection_lost' ? 'not connected' : err.message));
  }
}

$('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const raw = $('search-input').value.trim();
  if (!raw) return;
  const terms = [];
  let from;
  for (const w of raw.split(/\s+/)) {
    if (w.toLowerCase().startsWith('from:') && w.length > 5 && from === undefined) from = w.slice(5);
    else terms.push(w);
  }
  if (terms.length) search(terms.join(' '), from);
});

$('search-close').addEventListener('click', () => {
  $('search-panel').hidden = true;
  $('search-input').focus();
});

// ---- the input -------------------------------------------------------------------

const input = $('input');

function submitInput() {
  const line = input.value;
  if (!line.trim()) return;
  hint('');
  if (run(line)) {
    input.value = '';
    autosize();
  }
}

function autosize() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

input.addEventListener('input', () => {
  autosize();
  if ($('hint').textContent && !input.value.trim().startsWith('/')) hint('');
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submitInput();
  } else if (event.key === 'Tab' && !event.shiftKey && !event.altKey && !event.ctrlKey) {
    const nicks = new Set([...S.online.values()].map((u) => u.nick));
    for (const c of S.convs.values()) if (c.id.startsWith('@')) nicks.add(c.id.slice(1));
    if (S.me) nicks.delete(S.me);
    const result = complete(input.value, input.selectionStart, [...nicks], [...S.groups.values()]);
    if (!result) return; // nothing to complete: Tab moves the focus
    event.preventDefault();
    input.value = result.value;
    input.setSelectionRange(result.cursor, result.cursor);
    hint(result.candidates.length ? result.candidates.join('  ') : '');
  }
});

$('compose').addEventListener('submit', (event) => {
  event.preventDefault();
  submitInput();
  input.focus();
});

// ---- files -----------------------------------------------------------------------

let fileTarget = null;

function pickFileFor(to) {
  fileTarget = to;
  $('file-input').click();
}

function openConvReceiver() {
  const c = S.convs.get(S.open);
  if (!c || c.id === PUBLIC) {
    notice('files go to one person or a group, not to everyone: open a private conversation or a group first', 'error');
    return null;
  }
  return receiverOf(c);
}

$('attach').addEventListener('click', () => {
  const to = openConvReceiver();
  if (to) pickFileFor(to);
});

$('file-input').addEventListener('change', () => {
  const picked = [...$('file-input').files];
  $('file-input').value = '';
  for (const file of picked) sendFile(file, fileTarget);
});

function sendFile(file, to) {
  if (!to) return;
  if (file.size === 0) {
    notice(`${file.name} is empty: nothing to send`, 'error');
    return;
  }
  if (!S.loggedIn) notice(`${file.name} waits for the connection`, 'error');
  files.send(file, to);
}

const messagesBox = $('messages');
messagesBox.addEventListener('dragover', (event) => {
  if (![...event.dataTransfer.types].includes('Files')) return;
  event.preventDefault();
  messagesBox.classList.add('drop-target');
});
messagesBox.addEventListener('dragleave', () => messagesBox.classList.remove('drop-target'));
messagesBox.addEventListener('drop', (event) => {
  event.preventDefault();
  messagesBox.classList.remove('drop-target');
  const to = openConvReceiver();
  if (!to) return;
  for (const file of event.dataTransfer.files) sendFile(file, to);
});

// ---- notifications ---------------------------------------------------------------

function updateNotifyButton() {
  const button = $('notify');
  if (!('Notification' in window) || !window.isSecureContext) {
    button.hidden = true; // browsers allow notifications only on https:// (or this machine)
    return;
  }
  const p = Notification.permission;
  button.textContent = p === 'granted' ? 'Notifications on' : p === 'denied' ? 'Notifications blocked' : 'Enable notifications';
  button.disabled = p !== 'default';
  button.setAttribute('aria-pressed', String(p === 'granted'));
}

$('notify').addEventListener('click', async () => {
  // Asked only when the user presses the button, never on load.
  try {
    await Notification.requestPermission();
  } catch {
    // an old browser without the promise form
  }
  updateNotifyButton();
});

// ---- password change -------------------------------------------------------------

function openPasswordDialog() {
  const dialog = $('password-dialog');
  $('password-error').textContent = '';
  for (const id of ['password-old', 'password-new', 'password-new2']) $(id).value = '';
  dialog.showModal();
}

$('password-cancel').addEventListener('click', () => $('password-dialog').close());

$('password-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const old = $('password-old').value;
  const next = $('password-new').value;
  if (next !== $('password-new2').value) {
    $('password-error').textContent = 'the two new passwords differ';
    return;
  }
  try {
    await conn.request({ type: 'password', old, new: next });
  } catch (err) {
    $('password-error').textContent = err.code === 'connection_lost' ? 'not connected' : err.message;
    return;
  }
  S.password = next;
  session.save(S.nick, next);
  $('password-dialog').close();
  notice('password changed: log in with the new one from now on');
});

// ---- start -----------------------------------------------------------------------

updateNotifyButton();
hint('');
const saved = session.load();
if (saved) {
  // A reload of a logged-in tab: log in again, showing the app (and the
  // outbox) at once rather than the form.
  S.auto = true;
  S.nick = saved.nick;
  $('login').hidden = true;
  $('app').hidden = false;
  $('me').textContent = saved.nick;
  startSession(saved.nick, saved.password, false);
  openConv(PUBLIC);
} else {
  $('login-nick').focus();
}

// For a person at the console (and tests): the state, read-only by convention.
window.chat = { state: S, shortTime };
