// One WebSocket to the server's /ws, carrying exactly the frames of
// docs/protocol.md: each text message one JSON frame; a `chunk` frame is
// followed by one binary message of its `len` bytes, both ways. This module
// numbers requests and matches answers to them, pairs chunks with their
// bytes and keeps the connection honest (keepalive both ways). When to
// reconnect is the app's business: it knows why the connection ended.

/** Codes after which the server closes the connection. */
export const CLOSING_CODES = new Set(['taken_over', 'timeout', 'too_large', 'flooding', 'too_many_connections']);

/** An `error` frame as a thrown value. */
export class ServerError extends Error {
  constructor(frame) {
    super(frame.reason || frame.code);
    this.code = frame.code;
    this.frame = frame;
  }
}

/** The request could not be answered: the connection ended first. */
export class ConnectionLost extends Error {
  constructor() {
    super('not connected');
    this.code = 'connection_lost';
  }
}

// The client side of "Keepalive": after 30 s without a byte, ping; after
// 15 s more, the connection is lost (a Wi-Fi gone quiet never says so).
const PING_AFTER_MS = 30_000;
const LOST_AFTER_MS = 15_000;

export class Connection {
  /**
   * handlers: onOpen(), onFrame(frame) for every frame not answering a
   * request (and closing errors), onChunk(frame, bytes), onClose(why).
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map(); // id → {resolve, reject}
    this.chunkHead = null; // a `chunk` frame waiting for its bytes
    this.lastHeard = 0;
    this.pingSentAt = 0;
    this.timer = null;
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    this.disconnect();
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.heard();
      this.timer = setInterval(() => this.keepalive(), 1000);
      this.handlers.onOpen();
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.heard();
      if (typeof event.data === 'string') this.text(event.data);
      else this.binary(new Uint8Array(event.data));
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ended(event.reason || (event.wasClean ? 'the server closed the connection' : 'the connection was lost'));
    };
    ws.onerror = () => {}; // onclose follows and says it
  }

  /** Closes without telling the app (it asked for it). */
  disconnect() {
    if (!this.ws) return;
    const ws = this.ws;
    this.ws = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch {
      // already closed
    }
    this.cleanup();
  }

  ended(why) {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch {
        // already closed
      }
    }
    this.cleanup();
    this.handlers.onClose(why);
  }

  cleanup() {
    clearInterval(this.timer);
    this.timer = null;
    this.chunkHead = null;
    this.pingSentAt = 0;
    const pending = this.pending;
    this.pending = new Map();
    for (const { reject } of pending.values()) reject(new ConnectionLost());
  }

  heard() {
    this.lastHeard = Date.now();
    this.pingSentAt = 0;
  }

  keepalive() {
    const now = Date.now();
    if (this.pingSentAt) {
      if (now - this.pingSentAt >= LOST_AFTER_MS) this.ended('no answer from the server for 45 s');
    } else if (now - this.lastHeard >= PING_AFTER_MS && this.open) {
      this.pingSentAt = now;
      this.request({ type: 'ping' }).catch(() => {});
    }
  }

  /** Sends a frame that gets no answer (`received`, `pong`, `file_ack`). */
  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a request; resolves with its answer, rejects with ServerError / ConnectionLost. */
  request(frame) {
    if (!this.open) return Promise.reject(new ConnectionLost());
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.ws.send(JSON.stringify({ ...frame, id }));
    return promise;
  }

  /** A `chunk` frame and its bytes (a Uint8Array), as the transport wants them. */
  sendChunk(file, offset, bytes) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify({ type: 'chunk', file, offset, len: bytes.length }));
    this.ws.send(bytes);
    return true;
  }

  /** Bytes queued in the browser but not yet on the network. */
  get buffered() {
    return this.ws ? this.ws.bufferedAmount : 0;
  }

  text(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // not ours to repair; the server never sends this
    }
    if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
    if (frame.type === 'chunk') {
      this.chunkHead = frame;
      return;
    }
    if (frame.type === 'ping' && frame.id === undefined) {
      this.send({ type: 'pong' });
      return;
    }
    const waiting = frame.id !== undefined ? this.pending.get(frame.id) : undefined;
    if (waiting) {
      this.pending.delete(frame.id);
      if (frame.type === 'error') waiting.reject(new ServerError(frame));
      else waiting.resolve(frame);
      // A closing error answers a request and ends the session: the app must know.
      if (frame.type === 'error' && CLOSING_CODES.has(frame.code)) this.handlers.onFrame(frame);
      return;
    }
    this.handlers.onFrame(frame);
  }

  binary(bytes) {
    const head = this.chunkHead;
    this.chunkHead = null;
    if (head) this.handlers.onChunk(head, bytes);
  }
}
