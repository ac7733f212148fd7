// Drawing the session: the open conversation's messages, the sidebar's
// conversations and the online list, the sidebar's slide-in on phones.
// It reads the state (state.js) and never changes it; a click on a
// conversation or a nickname goes to `handlers.open`, set by app.js.

import { S, PUBLIC, HISTORY_MAX, lower, convTitle } from './state.js';
import { $, h, messageElement, dayElement } from './ui.js';

export const handlers = { open: () => {} };
const openConv = (key) => handlers.open(key);

const elements = new WeakMap(); // record → its .msg in #messages

export function appendMessage(rec, prev) {
  const box = $('messages');
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  if (!prev || new Date(prev.time).toDateString() !== new Date(rec.time).toDateString()) box.append(dayElement(rec.time));
  const el = messageElement(rec);
  elements.set(rec, el);
  box.append(el);
  if (stick || rec.own) box.scrollTop = box.scrollHeight;
}

export function refreshRecord(rec) {
  const old = elements.get(rec);
  if (!old || !old.isConnected) return;
  const el = messageElement(rec);
  elements.set(rec, el);
  old.replaceWith(el);
}

/** Draws the open conversation again; `keep` keeps the view where it was (history prepended). */
export function renderMessages(keep = false) {
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

export function updateEarlier(c) {
  const button = $('load-earlier');
  const start = $('history-start');
  const done = !c || c.atStart;
  button.hidden = done;
  button.disabled = Boolean(c && c.loading);
  button.textContent = c && c.loading ? 'Loading…' : 'Load earlier messages';
  start.hidden = !done || !c || !c.loaded;
  start.textContent = c && c.served >= HISTORY_MAX ? `the server gives at most the last ${HISTORY_MAX} messages` : 'the start of the conversation';
}


// The message list keeps to its bottom while it is there, also when the
// notices or transfers below it grow and shrink it.
let stuckToBottom = true;
new ResizeObserver(() => {
  const box = $('messages');
  if (stuckToBottom) box.scrollTop = box.scrollHeight;
}).observe($('messages'));

$('notices-clear').addEventListener('click', () => {
  $('notices').replaceChildren();
  $('notices-wrap').hidden = true;
  $('input').focus();
});

$('messages').addEventListener('scroll', () => {
  const box = $('messages');
  stuckToBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
});

// ---- sidebar -------------------------------------------------------------------

export function renderSidebar() {
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

export function renderOnline() {
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

export function closeSidebar() {
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
