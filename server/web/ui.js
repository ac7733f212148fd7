// Rendering. Everything that came from the server or a user goes into the
// page as textContent (`h` never parses HTML), so `<img onerror=…>` in a
// message is just text. No inline styles either: the CSP forbids them.

export const $ = (id) => document.getElementById(id);

/**
 * A new element: `h('span', {class: 'x', dataset: {seq: 3}}, 'text', child)`.
 * Strings become text nodes; attributes are set one by one.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'dataset') {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[k] = String(v);
    } else if (name === 'class') {
      el.className = value;
    } else if (name.startsWith('on')) {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return el;
}

const pad = (n) => String(n).padStart(2, '0');

/** HH:MM in local time. */
export const shortTime = (ms) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

/** The full local date and time, for the title (hover) of a time. */
export const fullTime = (ms) =>
  new Date(ms).toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'medium' });

export function humanBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u += 1;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

const STATE_TEXT = {
  pending: ['…', 'pending: not yet stored by the server'],
  stored: ['✓', 'stored by the server'],
  delivered: ['✓✓', 'delivered'],
  failed: ['!', 'not sent'],
};

/** Sets the delivery mark of an own message: pending → stored → delivered. */
export function setDeliveryState(stateEl, state, detail = '') {
  const [mark, label] = STATE_TEXT[state] || STATE_TEXT.pending;
  stateEl.dataset.state = state;
  stateEl.textContent = mark;
  const full = detail ? `${label} (${detail})` : label;
  stateEl.setAttribute('aria-label', full);
  stateEl.title = full;
}

const ACTION = '/me ';

/**
 * One `.msg`: time, sender, text and (own messages) the delivery state.
 * `rec`: {seq, sender, text, time, cid, own, state, stateDetail, away, mention, conv}.
 */
export function messageElement(rec, { showConv = false } = {}) {
  const isAction = rec.text.startsWith(ACTION) && rec.text.length > ACTION.length;
  const el = h(
    'div',
    {
      class: ['msg', rec.own ? 'own' : '', rec.mention ? 'mention' : '', isAction ? 'action' : ''].join(' ').trim(),
      dataset: { seq: rec.seq, sender: rec.sender, cid: rec.cid },
    },
    h('time', { class: 'time', datetime: new Date(rec.time).toISOString(), title: fullTime(rec.time) }, shortTime(rec.time)),
    showConv && rec.conv ? h('span', { class: 'where' }, rec.conv === '*' ? 'everyone' : rec.conv) : null,
    h('span', { class: 'sender' }, rec.sender),
    h('span', { class: 'text' }, isAction ? rec.text.slice(ACTION.length) : rec.text),
    rec.away ? h('span', { class: 'away-note', title: 'it arrived while you were away' }, 'while you were away') : null,
  );
  if (rec.own) {
    const state = h('span', { class: 'state', role: 'img' });
    setDeliveryState(state, rec.state || 'stored', rec.stateDetail);
    el.append(state);
    if (rec.state === 'failed' && rec.stateDetail) el.append(h('span', { class: 'failed-reason' }, rec.stateDetail));
  }
  return el;
}

/** A day line between messages of different days. */
export const dayElement = (ms) =>
  h('div', { class: 'day', role: 'separator' }, new Date(ms).toLocaleDateString(undefined, { dateStyle: 'full' }));

const MAX_NOTICES = 60;

/** A notice of the page (answers to commands, errors) in #notices. */
export function notice(text, kind = 'info') {
  const list = $('notices');
  const el = h('div', { class: `notice ${kind}` }, h('time', { class: 'time' }, shortTime(Date.now())), h('span', { class: 'notice-text' }, text));
  list.append(el);
  while (list.children.length > MAX_NOTICES) list.firstElementChild.remove();
  list.hidden = false;
  list.scrollTop = list.scrollHeight;
  return el;
}

/** Says something to screen readers only (the visible list is not a live region). */
export function announce(text) {
  const region = $('announcer');
  region.textContent = '';
  // A fresh text node each time, so the same text twice is read twice.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}
