// The search panel: `search` (full text, newest first) and its results as
// `.msg` elements; a result opens its conversation.

import { S, PUBLIC, lower } from './state.js';
import { $, h, messageElement } from './ui.js';
import { handlers } from './view.js';

/** Runs a `search` and shows its results in the panel. */
export async function search(conn, wordsText, from) {
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
      const go = () => handlers.open(where);
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

/** Wires the search form of the header to `conn`. */
export function initSearch(conn) {
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
    if (terms.length) search(conn, terms.join(' '), from);
  });

  $('search-close').addEventListener('click', () => {
    $('search-panel').hidden = true;
    $('search-input').focus();
  });
}
