// What must survive a reload, in localStorage, keyed by server (host) and
// nickname: the last seq shown per stream, the outbox of messages not yet
// acknowledged, and the known private conversations. The password lives in
// sessionStorage only (a reload of the tab logs in again; closing the tab
// forgets it), never in localStorage.

const PREFIX = 'chat:';

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback; // storage disabled or a damaged value: start afresh
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Private mode or a full quota: the page still works, it just forgets.
  }
}

/** The random part of every cid this browser makes, created once. */
function browserPrefix() {
  const key = `${PREFIX}cid-prefix`;
  let prefix = read(key, null);
  if (typeof prefix !== 'string' || !prefix) {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    prefix = 'w' + Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('');
    write(key, prefix);
  }
  return prefix;
}

/** The saved state of one account on one server. */
export class AccountStore {
  constructor(nick) {
    this.key = `${PREFIX}${location.host}:${nick.toLowerCase()}`;
    const saved = read(this.key, {});
    /** Last own-stream seq shown (null: none yet). */
    this.lastSeq = Number.isInteger(saved.lastSeq) ? saved.lastSeq : null;
    /** Last public seq shown (null: none yet). */
    this.lastPublic = Number.isInteger(saved.lastPublic) ? saved.lastPublic : null;
    /** [{cid, receiver, text, time}] in the order typed. */
    this.outbox = Array.isArray(saved.outbox) ? saved.outbox : [];
    /** Private conversations ("@nick") to list in the sidebar. */
    this.convs = Array.isArray(saved.convs) ? saved.convs : [];
    this.counter = Number.isInteger(saved.counter) ? saved.counter : 0;
  }

  save() {
    write(this.key, {
      lastSeq: this.lastSeq,
      lastPublic: this.lastPublic,
      outbox: this.outbox,
      convs: this.convs,
      counter: this.counter,
    });
  }

  /** A cid unique for this sender: the browser's prefix and a counter. */
  nextCid() {
    // Re-read the counter so that two tabs of one browser do not reuse one.
    const saved = read(this.key, {});
    if (Number.isInteger(saved.counter) && saved.counter > this.counter) this.counter = saved.counter;
    this.counter += 1;
    this.save();
    return `${browserPrefix()}-${this.counter}`;
  }

  addToOutbox(entry) {
    this.outbox.push(entry);
    this.save();
  }

  removeFromOutbox(cid) {
    const before = this.outbox.length;
    this.outbox = this.outbox.filter((e) => e.cid !== cid);
    if (this.outbox.length !== before) this.save();
  }

  /** Remembers that `seq` of a stream was shown; false if it was already. */
  markShown(isPublic, seq) {
    const last = isPublic ? this.lastPublic : this.lastSeq;
    if (last !== null && seq <= last) return false;
    if (isPublic) this.lastPublic = seq;
    else this.lastSeq = seq;
    this.save();
    return true;
  }

  forgetConv(conv) {
    this.convs = this.convs.filter((c) => c.toLowerCase() !== conv.toLowerCase());
    this.save();
  }

  rememberConv(conv) {
    if (conv.startsWith('@') && !this.convs.some((c) => c.toLowerCase() === conv.toLowerCase())) {
      this.convs.push(conv);
      this.save();
    }
  }
}

const SESSION_KEY = `${PREFIX}session`;

/** The login of this tab, so that a reload logs in again. */
export const session = {
  load() {
    try {
      const raw = sessionStorage.getItem(SESSION_KEY);
      const value = raw && JSON.parse(raw);
      return value && typeof value.nick === 'string' && typeof value.password === 'string'
        ? value
        : null;
    } catch {
      return null;
    }
  },
  save(nick, password) {
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({ nick, password }));
    } catch {
      // Without sessionStorage a reload asks for the password again.
    }
  },
  clear() {
    try {
      sessionStorage.removeItem(SESSION_KEY);
    } catch {
      // nothing stored
    }
  },
};
