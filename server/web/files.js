// File transfer (docs/protocol.md "File transfer"): a file goes to the
// server first (offer → upload → chunks), and each receiver downloads it
// from there (accept → download → chunks, file_ack as bytes arrive, check
// the SHA-256, downloaded). Uploads keep at most 8 chunks of 256 KiB beyond
// the last file_ack, as the server requires. After a reconnect, unfinished
// transfers resume: an upload by offering the same file again (the server
// answers with the offset it has), a download by accepting at the offset
// this page has.

import { h, humanBytes, notice } from './ui.js';
import { sha256Hex, subtleAvailable } from './sha256.js';

const CHUNK = 256 * 1024;
const WINDOW = 8 * CHUNK;

export class Files {
  /** conn: the Connection; onAttention(): an offer arrived (raise the title count). */
  constructor(conn, onAttention) {
    this.conn = conn;
    this.onAttention = onAttention;
    this.list = document.getElementById('transfers');
    this.uploads = new Map(); // server file id → upload
    this.downloads = new Map(); // server file id → download
    this.offers = new Map(); // server file id → offer element, not answered yet
  }

  // ---- the transfer element ------------------------------------------------

  element(t) {
    t.progress = h('progress', { max: Math.max(t.size, 1), value: 0, 'aria-label': `${t.name} progress` });
    t.label = h('span', { class: 'transfer-label' });
    t.detail = h('span', { class: 'transfer-detail' });
    t.el = h(
      'li',
      { class: 'transfer', dataset: { dir: t.dir } },
      h('span', { class: 'transfer-icon', 'aria-hidden': 'true' }, t.dir === 'up' ? '↑' : '↓'),
      h('span', { class: 'transfer-name' }, t.name),
      t.label,
      t.progress,
      t.detail,
    );
    this.list.append(t.el);
    this.list.hidden = false;
    return t.el;
  }

  setState(t, state, text) {
    t.state = state;
    t.el.dataset.state = state;
    if (t.id !== undefined) t.el.dataset.file = String(t.id);
    if (text !== undefined) t.label.textContent = text;
  }

  progress(t, bytes) {
    t.progress.value = t.size === 0 ? 1 : bytes;
    t.detail.textContent = `${humanBytes(bytes)} / ${humanBytes(t.size)}`;
  }

  // ---- sending ---------------------------------------------------------------

  /** Offers `file` (a File) to `to` (a nickname or #group) and uploads it. */
  async send(file, to) {
    const t = { dir: 'up', file, to, name: file.name, size: file.size, sent: 0, acked: 0, pumping: false };
    this.element(t);
    this.setState(t, 'offered', `to ${to}: computing SHA-256…`);
    this.progress(t, 0);
    try {
      t.sha256 = await sha256Hex(file, (done) => {
        t.detail.textContent = `hashing ${humanBytes(done)} / ${humanBytes(t.size)}`;
      });
    } catch (err) {
      this.setState(t, 'failed', `cannot read the file: ${err.message}`);
      return;
    }
    this.setState(t, 'offered', `to ${to}`);
    await this.offer(t);
  }

  async offer(t) {
    let answer;
    try {
      answer = await this.conn.request({ type: 'offer', to: t.to, name: t.name, size: t.size, sha256: t.sha256 });
    } catch (err) {
      if (err.code === 'connection_lost') {
        t.needsOffer = true; // offered again after the reconnect
        this.setState(t, t.state, `to ${t.to}: waiting for the connection`);
        this.pendingOffers.add(t);
      } else {
        this.setState(t, 'failed', `not sent: ${err.message}`);
        notice(`${t.name} not sent: ${err.message}`, 'error');
      }
      return;
    }
    t.needsOffer = false;
    t.id = answer.file;
    this.uploads.set(t.id, t);
    t.sent = t.acked = answer.offset;
    this.setState(t, 'sending', `to ${t.to}`);
    this.progress(t, t.acked);
    this.pump(t);
  }

  get pendingOffers() {
    if (!this._pendingOffers) this._pendingOffers = new Set();
    return this._pendingOffers;
  }

  /** Sends chunks while the window allows; file_ack calls it again. */
  async pump(t) {
    if (t.pumping) return;
    t.pumping = true;
    try {
      while (t.state === 'sending' && t.sent < t.size && t.sent - t.acked < WINDOW && this.conn.open) {
        const offset = t.sent;
        const bytes = new Uint8Array(await t.file.slice(offset, offset + CHUNK).arrayBuffer());
        if (t.state !== 'sending' || t.sent !== offset) break; // reset meanwhile (reconnect)
        if (!this.conn.sendChunk(t.id, offset, bytes)) break;
        t.sent = offset + bytes.length;
      }
    } catch (err) {
      this.setState(t, 'failed', `cannot read the file: ${err.message}`);
    } finally {
      t.pumping = false;
    }
  }

  // ---- receiving -------------------------------------------------------------

  /** An incoming file_offer: show it with accept / reject, once. */
  offered(f) {
    if (this.offers.has(f.file)) return;
    // Offered again after a reconnect while downloading it: resume() goes on
    // with it (accepting twice would restart the bytes mid-stream).
    if (this.downloads.has(f.file)) return;
    const accept = h('button', { class: 'accept', type: 'button' }, 'Accept');
    const reject = h('button', { class: 'reject', type: 'button' }, 'Reject');
    const el = h(
      'li',
      { class: 'offer', dataset: { file: f.file, state: 'offered' } },
      h('span', { class: 'transfer-icon', 'aria-hidden': 'true' }, '↓'),
      h('span', { class: 'offer-text' }, `${f.sender} offers you `, h('strong', {}, f.name), ` (${humanBytes(f.size)})`),
      accept,
      reject,
    );
    accept.addEventListener('click', () => this.accept(f.file));
    reject.addEventListener('click', () => this.reject(f.file));
    el.offer = f;
    this.offers.set(f.file, el);
    this.list.append(el);
    this.list.hidden = false;
    notice(`${f.sender} offers you ${f.name} (${humanBytes(f.size)}): accept or reject it below, or !accept ${f.file} / !reject ${f.file}`);
    this.onAttention(`${f.sender} offers you ${f.name}`);
  }

  /** Accepts offer `id` (by the button or !accept). */
  async accept(id) {
    const el = this.offers.get(id);
    if (!el) {
      notice(`no file ${id} is offered to you`, 'error');
      return;
    }
    const f = el.offer;
    this.offers.delete(id);
    el.remove();
    const d = { dir: 'down', id, name: f.name, size: f.size, sha256: f.sha256, sender: f.sender, parts: [], received: 0 };
    this.element(d);
    this.downloads.set(id, d);
    this.setState(d, 'receiving', `from ${f.sender}`);
    this.progress(d, 0);
    await this.requestDownload(d);
  }

  async requestDownload(d) {
    try {
      const answer = await this.conn.request({ type: 'accept', file: d.id, offset: d.received });
      if (answer.offset !== d.received) {
        if (answer.offset !== 0) throw new Error(`the server resumes at ${answer.offset}, not ${d.received}`);
        d.parts = []; // it starts over: so do we
        d.received = 0;
      }
      if (d.size === 0) await this.finish(d);
    } catch (err) {
      if (err.code === 'connection_lost') {
        this.setState(d, 'receiving', `from ${d.sender}: waiting for the connection`);
      } else {
        this.setState(d, 'failed', `cannot download: ${err.message}`);
      }
    }
  }

  resumeDownload(d) {
    if (d.resuming) return;
    d.resuming = true;
    notice(`resuming ${d.name} at byte ${d.received}`);
    this.requestDownload(d).finally(() => {
      d.resuming = false;
    });
  }

  async reject(id) {
    const el = this.offers.get(id);
    if (!el) {
      notice(`no file ${id} is offered to you`, 'error');
      return;
    }
    try {
      await this.conn.request({ type: 'reject', file: id });
    } catch (err) {
      notice(`could not reject ${el.offer.name}: ${err.message}`, 'error');
      return;
    }
    this.offers.delete(id);
    el.dataset.state = 'rejected';
    for (const b of el.querySelectorAll('button')) b.remove();
    el.append(h('span', { class: 'transfer-label' }, 'rejected'));
  }

  /** A chunk frame and its bytes. */
  chunk(frame, bytes) {
    const d = this.downloads.get(frame.file);
    if (!d || d.state !== 'receiving') return;
    if (frame.offset !== d.received || bytes.length !== frame.len) {
      this.setState(d, 'failed', `bytes out of order at ${frame.offset} (expected ${d.received})`);
      return;
    }
    d.parts.push(bytes);
    d.received += bytes.length;
    this.conn.send({ type: 'file_ack', file: d.id, bytes: d.received });
    this.progress(d, d.received);
    if (d.received >= d.size) this.finish(d);
  }

  async finish(d) {
    this.setState(d, 'receiving', `from ${d.sender}: checking SHA-256…`);
    const blob = new Blob(d.parts, { type: 'application/octet-stream' });
    d.parts = [];
    const hex = await sha256Hex(blob);
    const ok = hex === d.sha256;
    d.el.dataset.hashOk = String(ok);
    d.el.dataset.hashBy = subtleAvailable() ? 'crypto.subtle' : 'sha256.js';
    if (!ok) {
      this.setState(d, 'failed', `from ${d.sender}: SHA-256 mismatch — not saved`);
      notice(`${d.name}: the bytes received do not match the sender's SHA-256; discarded`, 'error');
      return;
    }
    try {
      await this.conn.request({ type: 'downloaded', file: d.id });
    } catch (err) {
      // The file is whole and verified either way; the server will just offer it again.
      notice(`${d.name}: could not tell the server it arrived (${err.message})`, 'error');
    }
    const link = h('a', { class: 'download-link', href: URL.createObjectURL(blob), download: d.name }, `Save ${d.name}`);
    d.el.append(link);
    this.setState(d, 'done', `from ${d.sender}: SHA-256 verified`);
    notice(`received ${d.name} (${humanBytes(d.size)}, SHA-256 verified): save it with the link below`);
  }

  // ---- server events ---------------------------------------------------------

  /** Handles file frames; false if `frame` is not one. */
  frame(frame) {
    switch (frame.type) {
      case 'file_ack': {
        const t = this.uploads.get(frame.file);
        if (!t) return true;
        t.acked = Math.max(t.acked, frame.bytes);
        this.progress(t, t.acked);
        if (frame.complete) {
          this.setState(t, 'waiting', `to ${t.to}: on the server, waiting for an answer`);
        } else {
          this.pump(t);
        }
        return true;
      }
      case 'file_offer':
        this.offered(frame);
        return true;
      case 'file_answer': {
        const t = this.uploads.get(frame.file);
        const verb = frame.accepted ? 'accepted' : 'rejected';
        notice(`${frame.to} ${verb} ${frame.name}`);
        if (t) {
          t.answers = (t.answers || []).concat(`${frame.to} ${verb}`);
          // For a group, one acceptance makes it done; rejected only if nobody took it.
          const state = frame.accepted || t.state === 'done' ? 'done' : 'rejected';
          this.setState(t, state, `to ${t.to}: ${t.answers.join(', ')}`);
        }
        return true;
      }
      case 'error': {
        // Upload failures come without an id, their reason starting "file N:".
        const m = /^file (\d+):/.exec(frame.reason || '');
        const t = m && this.uploads.get(Number(m[1]));
        if (!t) return false;
        this.setState(t, 'failed', `${frame.code}: ${frame.reason}`);
        notice(`${t.name} failed: ${frame.reason}`, 'error');
        return true;
      }
      default:
        return false;
    }
  }

  /** The connection is back (after the welcome): go on where transfers stopped. */
  resume() {
    for (const t of this.pendingOffers) {
      this.pendingOffers.delete(t);
      this.offer(t);
    }
    for (const t of this.uploads.values()) {
      if (t.state === 'sending') {
        notice(`resuming ${t.name}`);
        this.offer(t);
      }
    }
    for (const d of this.downloads.values()) if (d.state === 'receiving') this.resumeDownload(d);
  }

  /** Whether a download of `id` is known (so a repeated file_offer is not shown twice). */
  knows(id) {
    return this.offers.has(id) || this.downloads.has(id);
  }
}
