// The session's state, shared by app.js (which changes it) and view.js
// (which draws it). One plain object: the page has one session at a time.

export const PUBLIC = '*';
export const HISTORY_MAX = 500; // the most one history request returns

export const lower = (s) => s.toLowerCase();

/** How a conversation is titled: the public room is "Everyone". */
export const convTitle = (c) => (c.id === PUBLIC ? 'Everyone' : c.id.startsWith('#') ? c.id : c.id.slice(1));

/** Where a conversation's messages go (`receiver` of a message, `with` of history). */
export const receiverOf = (c) => (c.id === PUBLIC ? PUBLIC : c.id.startsWith('#') ? c.id : c.id.slice(1));

export const S = {
  me: null, // the nickname as the server spells it (welcome.nick)
  store: null, // AccountStore of this account on this server
  nick: '', // as typed at login
  password: '',
  register: false,
  auto: false, // logged in before in this tab: errors retry instead of asking
  loggedIn: false, // the current connection got its welcome
  stopped: false, // no reconnect (logged out, taken over, kicked)
  backoff: 1000, // the next reconnect's delay, ms
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
