/*!
 * twisted-uploads browser client — chunked, resumable WebSocket uploads for the djust File Uploads API.
 *
 * One classic script, no build step, ES2020. Behaviour comes from attributes inside a page root
 * `<div data-dj-view="ID" data-dj-uploads='{"url": ..., "token": ..., "slots": {...}}'>`:
 *
 *   dj-upload="slot"            file input: accept/multiple from the slot config, checks, then upload
 *   dj-upload-drop="slot"       drop zone (class upload-dragover while files are dragged over it); folders,
 *                               paste, and Enter/Space open the file dialog
 *   dj-upload-preview="slot"    previews: .upload-preview-item > .upload-preview-image/-name/-size
 *   dj-upload-progress="slot"   progress: .upload-progress-item[data-upload-ref] > name, track > bar, text
 *   dj-upload-cancel[="ref"]    a control that cancels one upload (the ref, or the enclosing item's)
 *   dj-submit / dj-click        LiveView events: wait for uploads, POST, swap in the re-rendered root
 *
 * Events (bubbling from the element, so also on window): djust:upload:progress {ref, progress, status,
 * uploadName} and djust:upload:error {file, error, code, ref, uploadName}. JavaScript API: window.djUploads
 * (docs/browser.md). Wire protocol: docs/protocol.md.
 *
 * The file is one script on purpose (docs/browser.md, "Structure"); it is made of units that only talk through
 * the interfaces named in their headers:
 *
 *   1. Shared       codes, statuses, small pure helpers
 *   2. Wire         the protocol's bytes: URLs, chunk frames, JSON messages
 *   3. Backoff      when to retry and when an outage is reported (`unreachable`)
 *   4. Entry        one file's state
 *   5. Flow         windowed reading and sending of one entry
 *   6. Connection   one socket's lifecycle: open, auth, close, reconnect, token renewal
 *   7. Transfers    the protocol's state machine for a view's entries (welcome, announce, resume, ack, ...)
 *   8. View         a page root: config, entries, checks, state changes, events
 *   9. Render       previews, progress bars, the aria-live announcer
 *  10. Directives   DOM input: file inputs, drop zones (folders), paste, keyboard, cancel controls
 *  11. LiveEvents   dj-submit / dj-click round trips, the root swap, the token renewal request
 *  12. API / start  window.djUploads and the (idempotent) binding to the document
 */
(function (global) {
  "use strict";

  // Included again — a second tag, or the page an event handler answered with, written by document.write (which
  // keeps this window but drops every listener of the document): keep the first instance and its state, and
  // bind it to the document as it is now.
  if (global.djUploads) {
    global.djUploads.scan();
    return;
  }

  // ============================================================================================== 1. Shared

  const VERSION = "0.2.0";
  const DEFAULT_WS_PATH = "/uploads/ws";
  const SERVER_BUSY_RETRY_MS = 1000;
  const MAX_REANNOUNCES = 3;
  const MAX_RECHECKS = 5;            // welcomes asked again for entries a left page had in flight
  const RECHECK_BASE_MS = 250;       // ...after 250 ms, then doubling: about 8 s in all
  const DEFAULT_MAX_PARALLEL = 4;
  const DEFAULT_WINDOW_CHUNKS = 16;

  // Mirrors twisted_uploads/errors.py MESSAGES exactly (tests compare the two). Keep it one JSON object.
  const ERROR_MESSAGES = Object.freeze({
    "invalid_token": "The upload token is missing, invalid or expired.",
    "forbidden_origin": "This page's origin may not upload here.",
    "protocol_error": "The upload client broke the protocol.",
    "unknown_slot": "There is no upload field of that name.",
    "too_large": "The file is larger than allowed.",
    "not_accepted": "This type of file is not accepted here.",
    "active_content": "SVG, HTML and JavaScript files are not accepted here.",
    "too_many_files": "Too many files for this field.",
    "server_busy": "Too many uploads at once; try again shortly.",
    "quota_exceeded": "This page has uploaded as much as it may.",
    "type_mismatch": "The file's content does not match its type or extension.",
    "size_mismatch": "The file sent more bytes than it declared.",
    "bad_offset": "A chunk arrived at the wrong position.",
    "frame_too_large": "A chunk was larger than the field's chunk size.",
    "unknown_entry": "No such upload in this session.",
    "timeout": "The upload stalled and timed out.",
    "cancelled": "The upload was cancelled.",
    "storage_failed": "The server could not store the file.",
    "too_many_entries": "This page has started too many uploads; reload it to start again.",
    "unreachable": "The upload server cannot be reached; retrying.",
    "registry_unavailable": "The upload registry cannot be reached; try again shortly."
  });

  // allow_upload()'s defaults (twisted_uploads/slots.py SlotConfig), for fields a page leaves out.
  const SLOT_DEFAULTS = Object.freeze({
    accept: "", max_entries: 1, max_file_size: 10000000, chunk_size: 65536, auto_upload: true,
  });

  // Entry statuses. The public progress-event statuses are uploading, complete, error and cancelled.
  const PENDING = "pending";         // chosen, waiting for a submit (auto_upload false)
  const QUEUED = "queued";           // waiting for the connection or a free parallel slot
  const ANNOUNCING = "announcing";   // announce sent, no answer yet
  const RESUMING = "resuming";       // resume sent after a reconnect, no answer yet
  const UPLOADING = "uploading";     // accepted: streaming
  const PAUSED = "paused";           // connection lost; resumes after the reconnect
  const COMPLETE = "complete";
  const ERROR = "error";
  const CANCELLED = "cancelled";
  const MOVED = "moved";             // another connection of the upload session took it over (`moved`)
  const DELIVERED = "delivered";     // handed to the view by an event; hidden until the server says if it is kept
  const INTERRUPTED = "interrupted"; // listed by the server, paused, but this page has not got the file
  const IN_FLIGHT = new Set([ANNOUNCING, RESUMING, UPLOADING]);
  const UNFINISHED = new Set([QUEUED, ANNOUNCING, RESUMING, UPLOADING, PAUSED]);
  // Not counted against max_entries: the server does not count them either.
  const UNCOUNTED = new Set([ERROR, CANCELLED, DELIVERED]);

  const SELECTOR = {
    root: "[data-dj-view]",
    input: "[dj-upload]",
    drop: "[dj-upload-drop]",
    preview: "[dj-upload-preview]",
    progress: "[dj-upload-progress]",
  };

  function message(code) {
    return ERROR_MESSAGES[code] || "The upload failed.";
  }

  /** Decimal units, as limits are written (5 MB = 5_000_000) and as the server's messages say them. */
  function formatBytes(size) {
    if (size < 1000) return `${size} B`;
    let value = size;
    for (const unit of ["kB", "MB", "GB", "TB"]) {
      value /= 1000;
      if (value < 1000 || unit === "TB") return `${value.toFixed(1)} ${unit}`;
    }
    return `${size} B`;
  }

  function newRef() {
    const bytes = new Uint8Array(12);
    global.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function acceptSpecs(accept) {
    return String(accept || "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  }

  /** Same rule as SlotConfig.accepts: any .ext, type/subtype or type/* spec matches; empty accepts all. */
  function accepts(accept, name, mime) {
    const specs = acceptSpecs(accept);
    if (!specs.length) return true;
    const lowerName = String(name).toLowerCase();
    const lowerMime = String(mime || "").toLowerCase().trim();
    return specs.some((spec) => {
      if (spec.startsWith(".")) return lowerName.endsWith(spec);
      if (spec.endsWith("/*")) return lowerMime.startsWith(spec.slice(0, -1));
      return lowerMime === spec;
    });
  }

  function attr(node, name) {
    return node.getAttribute(name) || "";
  }

  function dispatch(target, type, detail) {
    const event = new CustomEvent(type, { detail, bubbles: true, cancelable: false });
    // Events bubble from a connected element up to window; detached or missing targets dispatch on window.
    (target && target.isConnected ? target : global).dispatchEvent(event);
  }

  function csrfToken(scope) {
    const input = (scope && scope.querySelector('input[name="csrfmiddlewaretoken"]')) ||
      document.querySelector('input[name="csrfmiddlewaretoken"]');
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /**
   * The entries a page of this tab was still sending when it was left (a reload), for the next page: the server
   * may take a moment to notice the old socket is gone (it first reads what was already sent), so a welcome
   * that does not offer them yet is asked again (Transfers.welcome). Kept in sessionStorage: this tab only.
   */
  const LeftBehind = {
    KEY: `djUploads:left:${global.location.pathname}`,
    ids: new Set(),

    load() {
      try {
        const stored = JSON.parse(global.sessionStorage.getItem(LeftBehind.KEY) || "[]");
        global.sessionStorage.removeItem(LeftBehind.KEY);
        LeftBehind.ids = new Set(Array.isArray(stored) ? stored.filter(Number.isInteger) : []);
      } catch (error) {
        LeftBehind.ids = new Set(); // storage disabled: the page shows what its first welcome offers
      }
    },

    store(ids) {
      try {
        if (ids.length) global.sessionStorage.setItem(LeftBehind.KEY, JSON.stringify(ids));
        else global.sessionStorage.removeItem(LeftBehind.KEY);
      } catch (error) {
        // storage disabled or full: nothing to hand over
      }
    },
  };
  LeftBehind.load();

  // ================================================================================================ 2. Wire
  // Owns: the subprotocol, URL resolution, the 12-byte chunk header, JSON text frames. Knows nothing of state.

  const Wire = Object.freeze({
    SUBPROTOCOL: "twisted-uploads.v1",
    HEADER_BYTES: 12,

    /** A path (resolved against the page's host, ws: or wss: like the page) or a full ws(s)/http(s) URL. */
    url(configured) {
      const value = configured || DEFAULT_WS_PATH;
      if (/^wss?:\/\//i.test(value)) return value;
      if (/^https?:\/\//i.test(value)) return value.replace(/^http/i, "ws");
      const scheme = global.location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${global.location.host}${value.startsWith("/") ? value : `/${value}`}`;
    },

    /** The 12-byte header of a binary frame: u32 BE entry id, u64 BE offset. */
    header(entryId, offset) {
      const header = new DataView(new ArrayBuffer(Wire.HEADER_BYTES));
      header.setUint32(0, entryId);
      header.setBigUint64(4, BigInt(offset));
      return header.buffer;
    },

    /** One binary frame: u32 BE entry id, u64 BE offset, then the bytes. */
    chunk(entryId, offset, bytes) {
      const frame = new Uint8Array(Wire.HEADER_BYTES + bytes.byteLength);
      const header = new DataView(frame.buffer);
      header.setUint32(0, entryId);
      header.setBigUint64(4, BigInt(offset));
      frame.set(bytes, Wire.HEADER_BYTES);
      return frame;
    },

    encode(payload) {
      return JSON.stringify(payload);
    },

    /** A server control message, or null (binary frames and malformed text are not messages). */
    parse(data) {
      if (typeof data !== "string") return null;
      try {
        const msg = JSON.parse(data);
        return msg && typeof msg.type === "string" ? msg : null;
      } catch (error) {
        console.error("twisted-uploads: malformed message from the server", data);
        return null;
      }
    },
  });

  // ============================================================================================= 3. Backoff
  // Owns: the delay before each reconnect and the count of failed attempts since the last welcome.
  // Options (page-wide `window.djUploadsOptions = {retry: {...}}` or the root's config `retry`): baseMs, maxMs,
  // failAfter — failed attempts in a row after which queued files are told the server is unreachable;
  // openTimeoutMs — an attempt that has no `welcome` by then is given up (a server that never answers).

  const RETRY_DEFAULTS = Object.freeze({ baseMs: 500, maxMs: 15000, failAfter: 4, openTimeoutMs: 10000 });

  class Backoff {
    constructor(options) {
      this.options = options;
      this.failures = 0;   // attempts in a row that never reached `welcome`
    }

    get settings() {
      const page = (global.djUploadsOptions && global.djUploadsOptions.retry) || {};
      return { ...RETRY_DEFAULTS, ...page, ...(this.options() || {}) };
    }

    /** Exponential with jitter (a restarted server is not hit by every page at once); the first is immediate-ish. */
    nextDelay() {
      const { baseMs, maxMs } = this.settings;
      const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, this.failures - 1));
      return ceiling / 2 + Math.random() * (ceiling / 2);
    }

    /** Count one failed attempt; true exactly when this one crosses the failAfter threshold. */
    failed() {
      this.failures += 1;
      return this.failures === Math.max(1, this.settings.failAfter);
    }

    get exhausted() {
      return this.failures >= Math.max(1, this.settings.failAfter);
    }

    reset() {
      this.failures = 0;
    }
  }

  // =============================================================================================== 4. Entry
  // One file on its way to the server. Offsets: sent = handed to the socket, acked = stored by the server.
  // `file` is null for an entry only the server knows (listed in `welcome` but not chosen on this page).

  class Entry {
    constructor(view, slotName, file, origin, row) {
      this.ref = row ? row.ref : newRef();
      this.view = view;
      this.slotName = slotName;
      this.file = file;
      this.origin = origin;          // the element the file came from: events bubble from it
      this.relativePath = file ? relativePathOf(file) : null;
      this.serverName = row ? row.name : null;
      this.serverSize = row ? row.size : null;
      this.entryId = row ? row.entry : null;  // the server's id, from `accepted`
      this.status = PENDING;
      this.sentOffset = 0;
      this.ackedOffset = row ? row.offset || 0 : 0;
      this.chunkSize = 0;
      this.window = 0;
      this.epoch = 0;                // bumped on every `accepted`: reads started before it are stale
      this.reading = false;
      this.code = null;
      this.message = null;
      this.unreachable = false;      // an outage was reported for it; reconnecting continues
      this.sha256 = null;
      this.resumeCount = 0;
      this.reannounceCount = 0;
      this.previewUrl = null;
      this.fingerprint = null;       // a promise of fingerprintOf(file)
      this.adopting = false;         // `adopt` sent for an earlier page's entry, no answer yet
      this.expectedFingerprint = row ? row.fingerprint || null : null;  // what the server listed for it
      this.probed = false;           // delivered: the server was asked whether the handler kept it
      this.earlier = null;           // the `adoptable` row of an earlier page this entry stands for (a ghost)
      this.discarding = false;       // a ghost the user discarded: `discard` sent, no answer yet
    }

    /** An earlier page's interrupted upload shown on this page (`adoptable`), its file not chosen here yet. */
    get isGhost() { return this.earlier !== null && this.status === INTERRUPTED; }

    get name() { return this.file ? this.file.name : this.serverName || ""; }

    get size() { return this.file ? this.file.size : this.serverSize || 0; }

    get type() { return this.file ? this.file.type : ""; }

    get progress() {
      if (this.status === COMPLETE) return 100;
      if (this.size === 0) return 0;
      return Math.min(100, Math.floor((this.ackedOffset * 100) / this.size));
    }

    /** The status the seed's progress event knows: uploading, complete, error or cancelled. */
    get publicStatus() {
      if (this.status === COMPLETE || this.status === ERROR || this.status === CANCELLED) return this.status;
      return UPLOADING;
    }

    /** What data-upload-status shows: an unreachable server is an error state while retrying goes on. */
    get displayStatus() {
      return this.unreachable && UNFINISHED.has(this.status) ? ERROR : this.status;
    }

    snapshot() {
      return {
        ref: this.ref, uploadName: this.slotName, view: this.view.id, name: this.name, size: this.size,
        type: this.type, status: this.status, progress: this.progress, entry: this.entryId,
        sentOffset: this.sentOffset, ackedOffset: this.ackedOffset, code: this.code, error: this.message,
        sha256: this.sha256, resumeCount: this.resumeCount, path: this.relativePath,
        unreachable: this.unreachable,
      };
    }

    resetToStart() {
      this.entryId = null;
      this.sentOffset = 0;
      this.ackedOffset = 0;
      this.epoch += 1;
    }

    revokePreview() {
      if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
      this.previewUrl = null;
    }
  }

  /** The path a folder drop or a webkitdirectory input gave the file ("holiday/day1/a.png"), else null. */
  function relativePathOf(file) {
    const path = file.djRelativePath || file.webkitRelativePath || "";
    return path && path !== file.name ? path : null;
  }

  /**
   * What identifies a file across page loads without reading it all: "v1:<size>:<lastModified>:<SHA-256 of the
   * first 64 KiB>" (the name travels beside it in `announce`). The server stores it as an opaque string of at
   * most 200 characters and lists it with the entry, so a page can tell the same file from another one of the
   * same name and size. Null where WebCrypto is missing (an insecure origin).
   */
  async function fingerprintOf(file) {
    if (!global.crypto || !global.crypto.subtle) return null;
    const head = await file.slice(0, 65536).arrayBuffer();
    const bytes = new Uint8Array(await global.crypto.subtle.digest("SHA-256", head));
    const digest = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `v1:${file.size}:${file.lastModified}:${digest}`;
  }

  // ================================================================================================ 5. Flow
  // Owns: reading an accepted entry with File.slice and sending it within its window. Talks to a `link`
  // ({send(frame), live(ws)}) and tells `onReadError(entry)` when the file cannot be read.

  /**
   * Read and send while the entry's unacknowledged bytes fit its window. Each read takes the free part of the
   * window in one File.slice (at most `window` bytes: the file is never held in memory), cut into frames.
   */
  /**
   * From this chunk size on, frames are sent as Blobs (header + file slice) that the browser reads itself: in
   * Chromium 1 MiB Blob frames reach 180 MiB/s where read-and-copy frames stay near 65 (docs/browser.md, Speed);
   * below it one read per window and a copy per frame is faster than a Blob per frame.
   */
  const BLOB_FRAME_BYTES = 256 * 1024;
  /**
   * The most an entry reads and hands to the socket ahead of what the browser has passed to the network
   * (`bufferedAmount`): the window bounds what is unacknowledged, this bounds what sits in the tab's memory. A
   * 16 MiB first window on a slow uplink would otherwise be read and queued in the tab at once, and a `cancel` or
   * the next file's `announce` would wait behind it. Above it the entry waits for the socket to drain.
   */
  const SEND_AHEAD_BYTES = 4 * 1024 * 1024;
  const DRAIN_POLL_MS = 4;

  /** Resolves once `ws` has at most half of SEND_AHEAD_BYTES queued, or `live()` is false. */
  function drained(ws, live) {
    return new Promise((resolve) => {
      const check = () => {
        if (!live() || ws.bufferedAmount <= SEND_AHEAD_BYTES / 2) resolve();
        else setTimeout(check, DRAIN_POLL_MS);
      };
      check();
    });
  }

  async function streamEntry(entry, link, onReadError) {
    if (entry.reading) return;
    const ws = link.socket();
    const epoch = entry.epoch;
    const live = () => entry.status === UPLOADING && entry.epoch === epoch && link.live(ws);
    entry.reading = true;
    try {
      while (live() && entry.sentOffset < entry.size) {
        if (ws.bufferedAmount > SEND_AHEAD_BYTES) {
          await drained(ws, live);
          continue; // the window may have moved meanwhile
        }
        const start = entry.sentOffset;
        const unacked = start - entry.ackedOffset;
        let chunks = Math.floor((Math.min(entry.window - unacked, SEND_AHEAD_BYTES)) / entry.chunkSize);
        if (chunks < 1) {
          if (entry.window - unacked < entry.chunkSize && unacked > 0) break; // wait for an ack
          chunks = 1;             // a window (or a send-ahead) smaller than a chunk still moves one chunk at a time
        }
        const end = Math.min(entry.size, start + chunks * entry.chunkSize);
        if (entry.chunkSize >= BLOB_FRAME_BYTES) {
          // One byte read first: a file changed or removed since it was chosen fails here, as a read error,
          // rather than as a socket the browser closes when it cannot load a Blob it was given to send.
          const probe = await entry.file.slice(start, start + 1).arrayBuffer();
          if (!live() || entry.sentOffset !== start) break;
          if (probe.byteLength !== 1) throw new Error("short read");
          // Each frame is a Blob of the 12-byte header and a slice of the file: the browser reads the file while
          // sending, with no copy through JavaScript memory.
          for (let offset = start; offset < end; offset += entry.chunkSize) {
            const stop = Math.min(end, offset + entry.chunkSize);
            ws.send(new Blob([Wire.header(entry.entryId, offset), entry.file.slice(offset, stop)]));
          }
        } else {
          // Small frames: one read of the window's free part, cut into frames (a Blob per 64 KiB costs more).
          const block = await entry.file.slice(start, end).arrayBuffer();
          if (!live() || entry.sentOffset !== start) break;
          if (block.byteLength !== end - start) throw new Error("short read");
          for (let offset = 0; offset < block.byteLength; offset += entry.chunkSize) {
            const length = Math.min(entry.chunkSize, block.byteLength - offset);
            ws.send(Wire.chunk(entry.entryId, start + offset, new Uint8Array(block, offset, length)));
          }
        }
        entry.sentOffset = end;
      }
    } catch (error) {
      if (entry.status === UPLOADING && entry.epoch === epoch) onReadError(entry);
    } finally {
      entry.reading = false;
    }
    // A newer `accepted` arrived while a read was pending: stream again from the new offset.
    if (entry.epoch !== epoch && entry.status === UPLOADING) streamEntry(entry, link, onReadError);
  }

  // ========================================================================================== 6. Connection
  // Owns: one WebSocket at a time for a view — open, auth, close, reconnect with Backoff, renewal of an expired
  // token. Knows no entries: it reports to its `peer` (the view's Transfers):
  //   peer.token() / peer.url() / peer.retryOptions()  what to connect with
  //   peer.needsConnection()                             whether to (re)connect at all
  //   peer.welcome(msg) / peer.message(msg)              server messages
  //   peer.lost()                                        the socket closed (pause what was in flight)
  //   peer.unreachable()                                 failAfter attempts in a row failed (once per outage)
  //   peer.fatal(code)                                   retrying cannot help (until a new token arrives)
  //   peer.renewToken() -> Promise<bool>                 ask the page for a fresh token

  // Close codes after which reconnecting with the same token cannot help (docs/protocol.md §10).
  const FATAL_CLOSE_CODES = Object.freeze({ 4001: "invalid_token", 4002: "protocol_error", 1009: "frame_too_large" });

  class Connection {
    constructor(peer) {
      this.peer = peer;
      this.ws = null;
      this.state = "idle";           // idle | connecting | open | waiting (backoff) | renewing | failed
      this.timer = null;
      this.openTimer = null;
      this.backoff = new Backoff(() => peer.retryOptions());
      this.lastErrorCode = null;
      this.failedToken = null;
      this.welcomed = false;         // the current socket got `welcome`
      this.renewals = 0;             // token renewals since the last welcome (one is enough; more is a loop)
      this.wsCount = 0;
      this.reconnectAfterMs = null;  // a delay chosen by the caller of drop(), for the next reconnect only
    }

    get isOpen() {
      return this.state === "open";
    }

    get isUnreachable() {
      return this.state !== "open" && this.backoff.exhausted;
    }

    socket() {
      return this.ws;
    }

    live(ws) {
      return ws !== null && ws === this.ws && ws.readyState === WebSocket.OPEN;
    }

    ensureOpen() {
      if (["open", "connecting", "waiting", "renewing"].includes(this.state)) return;
      if (this.state === "failed" && this.peer.token() === this.failedToken) return;
      this.connect();
    }

    connect() {
      clearTimeout(this.timer);
      this.timer = null;
      this.reconnectAfterMs = null;
      this.state = "connecting";
      this.lastErrorCode = null;
      this.welcomed = false;
      let ws;
      try {
        ws = new WebSocket(Wire.url(this.peer.url()), Wire.SUBPROTOCOL);
      } catch (error) {
        console.error("twisted-uploads: cannot open the upload WebSocket", error);
        this.onClose({ code: 1006 });
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.wsCount += 1;
      clearTimeout(this.openTimer);
      this.openTimer = setTimeout(() => { if (ws === this.ws && !this.welcomed) ws.close(); },
                                  this.backoff.settings.openTimeoutMs);
      ws.onopen = () => { if (ws === this.ws) this.send({ type: "auth", token: this.peer.token() }); };
      ws.onmessage = (event) => { if (ws === this.ws) this.onMessage(event.data); };
      ws.onclose = (event) => { if (ws === this.ws) this.onClose(event); };
      ws.onerror = () => {}; // a close event always follows
    }

    leave() {
      if (this.ws) this.ws.close(1000, "page left");
    }

    /** Drop the socket as if the network failed (tests and `djUploads.reconnect()`); resume follows. */
    drop(reconnectAfterMs) {
      if (!this.ws) return;
      this.reconnectAfterMs = reconnectAfterMs === undefined ? null : reconnectAfterMs;
      this.ws.close(4000, "client reconnect");
    }

    send(payload) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(Wire.encode(payload));
    }

    scheduleReconnect() {
      this.state = "waiting";
      clearTimeout(this.timer);
      const delay = this.reconnectAfterMs === null ? this.backoff.nextDelay() : this.reconnectAfterMs;
      this.reconnectAfterMs = null;
      this.timer = setTimeout(() => { this.timer = null; this.connect(); }, delay);
    }

    reconnectNow() {
      if (this.state === "waiting") this.connect();
    }

    onMessage(data) {
      const msg = Wire.parse(data);
      if (!msg) return;
      if (msg.type === "welcome") {
        this.state = "open";
        this.welcomed = true;
        clearTimeout(this.openTimer);
        this.renewals = 0;
        this.backoff.reset();
        this.peer.welcome(msg);
      } else if (msg.type === "error" && msg.entry === undefined && msg.ref === undefined) {
        // Connection-level: the server closes next; onClose decides whether reconnecting can help.
        this.lastErrorCode = msg.code;
        console.error(`twisted-uploads: ${msg.code}: ${msg.message || message(msg.code)}`);
      } else {
        this.peer.message(msg);
      }
    }

    onClose(event) {
      this.ws = null;
      this.peer.lost();
      const fatal = FATAL_CLOSE_CODES[event.code] || (this.lastErrorCode === "invalid_token" ? "invalid_token" : null);
      if (fatal === "invalid_token" && this.renewals === 0) {
        // The page stayed open past the token's lifetime: ask the page for a fresh one for the same session.
        this.renewals += 1;
        this.state = "renewing";
        this.peer.renewToken().then((renewed) => {
          if (this.state !== "renewing") return;
          if (renewed) this.connect();
          else this.fail(fatal);
        });
        return;
      }
      if (fatal) {
        this.fail(fatal);
        return;
      }
      this.state = "idle";
      // A socket that never got `welcome` is a failed attempt: refused, 403, 404, or the server is down.
      if (!this.welcomed && this.backoff.failed()) this.peer.unreachable();
      if (this.peer.needsConnection()) this.scheduleReconnect();
    }

    fail(code) {
      this.state = "failed";
      this.failedToken = this.peer.token();
      this.peer.fatal(code);
    }
  }

  // =========================================================================================== 7. Transfers
  // Owns: the protocol's state for one view's entries — what to announce or resume within max_parallel, what the
  // server's answers mean for each entry, the list in `welcome`, and the earlier pages' entries it offers
  // (`adoptable`: adopted when their file is chosen again, or discarded). Changes entries only through the view.

  class Transfers {
    constructor(view) {
      this.view = view;
      this.connection = new Connection(this);
      this.maxParallel = DEFAULT_MAX_PARALLEL;
      this.serverSlots = {};
      this.awaiting = new Map();     // ref -> entry whose announce/resume is unanswered
      this.adoptable = [];           // welcome's paused entries of earlier pages of this view (a reload)
      this.discarded = new Set();    // entry ids of earlier pages' uploads discarded here: never offered again
      this.welcomed = false;         // a welcome has been read (a resumable page connects at once for it)
      this.rechecks = 0;             // welcomes asked again because entries left behind were not offered yet
      this.recheck = false;          // the socket was dropped to ask again: reconnect even with nothing to send
      this.retryTimer = null;
      this.link = { socket: () => this.connection.socket(), live: (ws) => this.connection.live(ws) };
    }

    // -- what the Connection asks --
    token() { return this.view.config.token; }

    url() { return this.view.config.url; }

    retryOptions() { return this.view.config.retry; }

    needsConnection() { return this.view.needsConnection(); }

    renewToken() { return LiveEvents.renewToken(this.view); }

    lost() {
      this.awaiting.clear();
      for (const entry of this.view.entries) {
        if (IN_FLIGHT.has(entry.status)) this.view.setStatus(entry, PAUSED);
        // A probe lost with the socket is asked again (the next welcome answers it).
        if (entry.status === DELIVERED) entry.probed = false;
      }
    }

    unreachable() {
      for (const entry of this.view.entries.slice()) {
        if (UNFINISHED.has(entry.status)) this.view.markUnreachable(entry);
      }
    }

    fatal(code) {
      for (const entry of this.view.entries.slice()) {
        if (UNFINISHED.has(entry.status)) this.view.fail(entry, code, null);
      }
    }

    welcome(msg) {
      this.welcomed = true;
      this.recheck = false;
      this.maxParallel = msg.max_parallel || DEFAULT_MAX_PARALLEL;
      this.serverSlots = msg.slots || {};
      this.adoptable = (Array.isArray(msg.adoptable) ? msg.adoptable : []).filter((row) => row &&
        Number.isInteger(row.entry) && !this.discarded.has(row.entry));
      const listed = new Map((msg.entries || []).map((row) => [row.ref, row]));
      for (const entry of this.view.entries.slice()) {
        if (entry.isGhost) continue; // an earlier page's: `adoptable` below says whether it is still there
        const row = listed.get(entry.ref);
        listed.delete(entry.ref);
        this.view.reachable(entry);
        if (entry.status === CANCELLED) {
          // Cancelled while disconnected: tell the server now, or forget it if the server has nothing.
          if (row) this.connection.send({ type: "cancel", entry: row.entry });
          else this.view.forget(entry);
        } else if (entry.status === DELIVERED || entry.status === MOVED || entry.status === INTERRUPTED) {
          // The server's word decides: still listed means the handler left it (or another tab holds it).
          if (row) this.view.adoptRow(entry, row);
          else this.view.forget(entry);
        } else if (UNFINISHED.has(entry.status)) {
          if (!row) {
            // The server never got it or has let it go (grace expired, server restarted): start over.
            entry.resetToStart();
            this.view.setStatus(entry, QUEUED);
          } else {
            entry.entryId = row.entry;
            if (row.status === COMPLETE) this.view.complete(entry, null);
            else if (row.status === ERROR) this.view.fail(entry, row.code || "storage_failed", null);
            else if (row.status === CANCELLED) this.view.markCancelled(entry);
            else this.view.setStatus(entry, QUEUED); // paused or uploading elsewhere: resume from its offset
          }
        }
      }
      // Entries of the session this page does not hold (posted without JavaScript, another tab of the view):
      // they take places of max_entries, so the page shows and counts them.
      for (const row of listed.values()) this.view.addServerEntry(row);
      // Earlier pages' interrupted uploads (a reload): shown until their file is chosen again or discarded.
      this.view.showAdoptable(this.adoptable);
      if (this.askAgainForLeftBehind(msg)) return; // the next welcome starts what waits
      for (const ghost of this.view.entries) if (ghost.isGhost && ghost.discarding) this.discard(ghost);
      this.pump();
    }

    /**
     * The page this tab left mid-upload had entries in flight that this welcome neither offers nor lists: the
     * server has not read the old socket's end yet. Reconnect after a growing delay and look again, at most
     * MAX_RECHECKS times; entries that never show (another view's, consumed, expired) stop mattering then.
     */
    askAgainForLeftBehind(msg) {
      if (!LeftBehind.ids.size || !this.view.config.resumable) return false;
      const known = new Set([...(msg.entries || []), ...this.adoptable].map((row) => row.entry));
      for (const id of known) LeftBehind.ids.delete(id);
      if (!LeftBehind.ids.size) return false;
      if (this.rechecks >= MAX_RECHECKS) {
        LeftBehind.ids.clear();
        return false;
      }
      this.rechecks += 1;
      this.recheck = true;
      this.connection.drop(RECHECK_BASE_MS * 2 ** (this.rechecks - 1));
      return true;
    }

    message(msg) {
      const handler = this[`on_${msg.type}`];
      if (typeof handler === "function") handler.call(this, msg);
    }

    on_accepted(msg) {
      const view = this.view;
      const entry = this.awaiting.get(msg.ref) || view.entryById(msg.entry) || view.entryByRef(msg.ref);
      this.awaiting.delete(msg.ref);
      if (!entry || entry.status === CANCELLED) {
        // Replaced or cancelled while the announce was on its way: free the slot on the server.
        this.connection.send({ type: "cancel", entry: msg.entry });
        if (entry) entry.entryId = msg.entry;
        this.pump();
        return;
      }
      if (entry.status === DELIVERED) return; // a probe's answer is `complete` or an error, never this
      const resumed = entry.status === RESUMING || entry.adopting;
      entry.adopting = false;
      entry.earlier = null; // an adopted earlier page's entry is this page's own from now on
      const slot = this.serverSlots[entry.slotName] || view.slot(entry.slotName) || {};
      entry.entryId = msg.entry;
      entry.chunkSize = msg.chunk_size || slot.chunk_size || 65536;
      entry.window = msg.window || slot.window || entry.chunkSize * DEFAULT_WINDOW_CHUNKS;
      entry.sentOffset = entry.ackedOffset = msg.offset || 0;
      entry.epoch += 1;
      if (resumed) entry.resumeCount += 1;
      if (entry.status !== COMPLETE) view.setStatus(entry, UPLOADING, true);
      this.pump();
    }

    on_rejected(msg) {
      const entry = this.awaiting.get(msg.ref);
      this.awaiting.delete(msg.ref);
      if (!entry) return;
      if (entry.status === CANCELLED) {
        this.view.forget(entry);
      } else if (entry.adopting && msg.code !== "server_busy") {
        // The earlier page's entry is gone (grace over, taken by another tab): upload the file from the start.
        entry.adopting = false;
        entry.earlier = null;
        this.view.setStatus(entry, QUEUED);
      } else if (msg.code === "server_busy") {
        // Still offered: the retry adopts it again.
        if (entry.adopting && entry.earlier) this.adoptable.push(entry.earlier);
        entry.adopting = false;
        this.view.setStatus(entry, QUEUED);
        this.retryLater();
      } else {
        this.view.fail(entry, msg.code, msg.message);
      }
      this.pump();
    }

    on_ack(msg) {
      const entry = this.view.entryById(msg.entry);
      if (!entry || entry.status !== UPLOADING) return;
      if (msg.offset > entry.ackedOffset) entry.ackedOffset = msg.offset;
      if (entry.sentOffset < entry.ackedOffset) entry.sentOffset = entry.ackedOffset;
      // The server adapts the window to the link (protocol §5): follow the one this ack announces.
      if (Number.isInteger(msg.window) && msg.window > 0) entry.window = msg.window;
      this.view.changed(entry, true);
      this.stream(entry);
    }

    on_complete(msg) {
      const entry = this.view.entryById(msg.entry);
      if (!entry) return;
      this.awaiting.delete(entry.ref);
      if (entry.status === CANCELLED) {
        // The server finished it before our cancel arrived and keeps it for the view; nothing left to do here.
        this.view.forget(entry);
      } else if (entry.status === DELIVERED) {
        // The event's handler did not consume it: it is still the view's, and still counts.
        this.view.adoptRow(entry, { status: COMPLETE, sha256: msg.sha256 });
      } else {
        this.view.complete(entry, msg.sha256 || null);
      }
      this.pump();
    }

    on_error(msg) {
      if (this.discardAnswered(msg)) return;
      const view = this.view;
      const entry = view.entryById(msg.entry) || this.awaiting.get(msg.ref) || view.entryByRef(msg.ref);
      if (!entry) return;
      this.awaiting.delete(entry.ref);
      if (entry.status === CANCELLED) {
        view.forget(entry);
      } else if (entry.status === DELIVERED) {
        // Consumed by the handler (unknown_entry), or a failed file it left: gone, or back as it was.
        if (msg.code === "unknown_entry") view.forget(entry);
        else view.adoptRow(entry, { status: ERROR, code: msg.code, message: msg.message });
      } else if (msg.code === "unknown_entry" && UNFINISHED.has(entry.status) && entry.file &&
                 entry.reannounceCount < MAX_REANNOUNCES) {
        // The server let the entry go (grace period over): the file is still here, so send it again.
        entry.reannounceCount += 1;
        entry.resetToStart();
        view.setStatus(entry, QUEUED);
      } else if (msg.code === "server_busy" && entry.status === RESUMING) {
        view.setStatus(entry, QUEUED);
        this.retryLater();
      } else if (!(entry.status === COMPLETE && msg.code === "unknown_entry")) {
        view.fail(entry, msg.code, msg.message);
      }
      this.pump();
    }

    on_cancelled(msg) {
      if (this.discardAnswered(msg)) return;
      const entry = this.view.entryById(msg.entry) || this.view.entryByRef(msg.ref);
      if (!entry) return;
      this.awaiting.delete(entry.ref);
      this.view.markCancelled(entry);
      this.view.forget(entry);
      this.pump();
    }

    /** Another tab or connection of the upload session resumed this entry: stop sending; it is not a failure. */
    on_moved(msg) {
      const entry = this.view.entryById(msg.entry) || this.view.entryByRef(msg.ref);
      if (!entry || !UNFINISHED.has(entry.status)) return;
      this.awaiting.delete(entry.ref);
      entry.epoch += 1; // a read in progress sends nothing more
      this.view.setStatus(entry, MOVED);
      this.pump();
    }

    retryLater() {
      if (this.retryTimer) return;
      this.retryTimer = setTimeout(() => { this.retryTimer = null; this.pump(); }, SERVER_BUSY_RETRY_MS);
    }

    /** Start what may start: announces and resumes within max_parallel, then stream every accepted entry. */
    pump() {
      if (!this.connection.isOpen) {
        if (this.view.needsConnection()) this.connection.ensureOpen();
        return;
      }
      const entries = this.view.entries;
      let inFlight = entries.filter((e) => IN_FLIGHT.has(e.status)).length;
      const announcingSlots = new Set(Array.from(this.awaiting.values(), (e) => e.slotName));
      for (const entry of entries) {
        if (entry.status === DELIVERED && entry.entryId !== null && !entry.probed) {
          // Ask what became of a handed-over entry: `complete` (kept) or unknown_entry (consumed).
          entry.probed = true;
          this.connection.send({ type: "resume", entry: entry.entryId });
          continue;
        }
        if (inFlight >= this.maxParallel) continue;
        // One announce per slot at a time, so a replaced entry's cancel reaches the server before the next
        // announce is counted against max_entries.
        if (entry.status !== QUEUED || announcingSlots.has(entry.slotName)) continue;
        this.awaiting.set(entry.ref, entry);
        announcingSlots.add(entry.slotName);
        inFlight += 1;
        if (entry.entryId !== null) {
          this.view.setStatus(entry, RESUMING);
          this.resume(entry);
        } else {
          this.view.setStatus(entry, ANNOUNCING);
          this.announce(entry);
        }
      }
      for (const entry of entries) {
        if (entry.status === UPLOADING) this.stream(entry);
      }
    }

    /** Resume from the server's offset — once the file chosen for an interrupted entry proved to be its file. */
    async resume(entry) {
      const ws = this.connection.socket();
      if (entry.expectedFingerprint) {
        let mine = null;
        try {
          mine = entry.fingerprint ? await entry.fingerprint : null;
        } catch (error) {
          mine = null;
        }
        if (entry.status !== RESUMING || !this.connection.live(ws)) return;
        if (mine !== entry.expectedFingerprint) {
          // Same name and size, other content (or unknown): never continue someone else's bytes with it.
          this.awaiting.delete(entry.ref);
          this.view.notItsFile(entry);
          this.pump();
          return;
        }
        entry.expectedFingerprint = null;
      }
      this.connection.send({ type: "resume", entry: entry.entryId });
    }

    /**
     * An entry of an earlier page that `welcome` offered (`adoptable`) with this file's fingerprint, taken: the
     * one the entry's ghost stands for first, else any other that no file of this page is continuing already.
     */
    takeAdoptable(entry, fingerprint) {
      if (!fingerprint) return null;
      const fits = (row) => row.slot === entry.slotName && row.size === entry.size && row.fingerprint === fingerprint;
      const continued = (row) => this.view.entries.some((e) => e !== entry && !e.isGhost && e.earlier &&
        e.earlier.entry === row.entry);
      let index = entry.earlier ? this.adoptable.findIndex((row) => row.entry === entry.earlier.entry && fits(row)) : -1;
      if (index < 0) index = this.adoptable.findIndex((row) => fits(row) && !continued(row));
      return index < 0 ? null : this.adoptable.splice(index, 1)[0];
    }

    /** Discard an earlier page's interrupted upload (its ghost's Discard): sent now, or after the next welcome. */
    discard(ghost) {
      if (this.connection.isOpen) this.connection.send({ type: "discard", entry: ghost.earlier.entry });
      else this.connection.ensureOpen();
    }

    /** The answer to a `discard` (`cancelled`, or unknown_entry: gone already): the ghost goes for good. */
    discardAnswered(msg) {
      const ghost = this.view.entries.find((e) => e.isGhost && e.discarding && e.earlier.entry === msg.entry);
      if (!ghost || !(msg.type === "cancelled" || msg.code === "unknown_entry")) return false;
      this.discarded.add(msg.entry);
      this.adoptable = this.adoptable.filter((row) => row.entry !== msg.entry);
      this.view.forget(ghost);
      return true;
    }

    async announce(entry) {
      const ws = this.connection.socket();
      let fingerprint = null;
      try {
        fingerprint = entry.fingerprint ? await entry.fingerprint : null;
      } catch (error) {
        fingerprint = null; // unreadable head: the server reads the file anyway and says what is wrong
      }
      if (entry.status !== ANNOUNCING || !this.connection.live(ws)) return;
      if (entry.earlier && (!fingerprint || fingerprint !== entry.earlier.fingerprint)) {
        // Chosen for an earlier page's ghost, same name and size but other content: a new upload; the ghost stays.
        this.awaiting.delete(entry.ref);
        this.view.notItsFile(entry);
        this.pump();
        return;
      }
      const payload = { type: "announce", ref: entry.ref, slot: entry.slotName, name: entry.name,
                        mime: entry.type || "", size: entry.size };
      if (entry.relativePath) payload.relative_path = entry.relativePath;
      if (fingerprint) payload.fingerprint = fingerprint;
      const earlier = this.takeAdoptable(entry, fingerprint);
      if (earlier) {
        // The same file was being uploaded by an earlier page of this view (a reload): continue its entry, and
        // its ghost (if this file was not chosen for the ghost itself) goes.
        entry.adopting = true;
        entry.earlier = earlier;
        this.view.dropGhosts(earlier.entry);
        this.connection.send({ type: "adopt", entry: earlier.entry, ref: entry.ref });
        return;
      }
      this.connection.send(payload);
    }

    stream(entry) {
      streamEntry(entry, this.link, (failed) => {
        this.connection.send({ type: "cancel", entry: failed.entryId });
        this.view.fail(failed, "size_mismatch", `${failed.name} could not be read; it may have been changed or moved.`);
      });
    }

    cancel(entry) {
      if (entry.entryId === null || !this.connection.isOpen) return false;
      this.connection.send({ type: "cancel", entry: entry.entryId });
      return true;
    }
  }

  // ================================================================================================ 8. View
  // Owns: one page root's config, its entries and their state changes, the client-side checks, the events.

  class View {
    constructor(id) {
      this.id = id;
      this.config = { url: DEFAULT_WS_PATH, token: "", slots: {}, retry: null, resumable: false };
      this.configText = null;
      this.entries = [];
      this.announcedGhosts = new Set(); // earlier pages' entry ids already announced through the live region
      this.transfers = new Transfers(this);
      this.settleWaiters = [];
    }

    get connection() {
      return this.transfers.connection;
    }

    get root() {
      return document.querySelector(`[data-dj-view="${CSS.escape(this.id)}"]`);
    }

    configure(root) {
      const text = root.getAttribute("data-dj-uploads");
      if (text === null || text === this.configText) return;
      this.configText = text;
      try {
        const parsed = JSON.parse(text);
        const slots = {};
        for (const [name, slot] of Object.entries(parsed.slots || {})) slots[name] = { ...SLOT_DEFAULTS, ...slot };
        this.config = { url: parsed.url || DEFAULT_WS_PATH, token: parsed.token || "", slots,
                        retry: parsed.retry || null, resumable: parsed.resumable === true };
      } catch (error) {
        console.error("twisted-uploads: data-dj-uploads is not valid JSON", error);
      }
      // A new token (from a re-render) may succeed where the old one failed; a resumable page (earlier pages
      // may hold interrupted uploads) connects at once, so its welcome can show them before a file is chosen.
      if ((this.connection.state === "failed" || this.config.resumable) && this.needsConnection()) {
        this.connection.ensureOpen();
      }
    }

    slot(name) {
      const slots = this.config.slots || {};
      return Object.prototype.hasOwnProperty.call(slots, name) ? slots[name] : null;
    }

    entryById(id) {
      if (id === undefined || id === null) return null;
      return this.entries.find((e) => e.entryId === id) || null;
    }

    entryByRef(ref) {
      if (!ref) return null;
      return this.entries.find((e) => e.ref === ref) || null;
    }

    /** Entries that take one of the slot's max_entries places, as the server counts them (not ghosts). */
    activeEntries(slotName) {
      return this.entries.filter((e) => e.slotName === slotName && !UNCOUNTED.has(e.status) && !e.isGhost);
    }

    needsConnection() {
      // Resumable: connect for the first welcome (bounded: after failAfter failures the first file retries).
      if (this.config.resumable && (!this.transfers.welcomed || this.transfers.recheck) &&
          !this.connection.backoff.exhausted) return true;
      return this.entries.some((e) => UNFINISHED.has(e.status) || (e.isGhost && e.discarding) ||
        (e.entryId !== null && (e.status === CANCELLED || (e.status === DELIVERED && !e.probed))));
    }

    isSettled() {
      return !this.entries.some((e) => UNFINISHED.has(e.status) || e.status === PENDING);
    }

    /** Run the client-side checks, then queue (auto_upload) or hold (previews only) the files that pass. */
    addFiles(slotName, files, origin) {
      const slot = this.slot(slotName);
      const candidates = [];
      for (const file of files) {
        if (!slot) {
          this.reject(file, slotName, origin, "unknown_slot", `There is no upload field named ${slotName}.`);
        } else if (file.size > slot.max_file_size) {
          this.reject(file, slotName, origin, "too_large",
            `${file.name} is ${formatBytes(file.size)}; the limit is ${formatBytes(slot.max_file_size)}.`);
        } else if (!accepts(slot.accept, file.name, file.type)) {
          this.reject(file, slotName, origin, "not_accepted",
            `${file.name} is not one of the accepted types (${slot.accept}).`);
        } else {
          candidates.push(file);
        }
      }
      if (!slot || !candidates.length) return [];
      const maxEntries = slot.max_entries || 1;
      const added = [];
      const fresh = [];
      for (const file of candidates) {
        // The file of an interrupted upload chosen again: it continues from the server's offset.
        const ghost = this.entries.find((e) => e.status === INTERRUPTED && e.slotName === slotName &&
          e.serverName === file.name && e.serverSize === file.size && !e.discarding);
        if (ghost && ghost.earlier && maxEntries > 1 && this.activeEntries(slotName).length >= maxEntries) {
          // An earlier page's upload joins this page's entries: it needs a free place like any new file.
          this.reject(file, slotName, origin, "too_many_files",
            `${file.name}: ${slotName} takes at most ${maxEntries} file(s).`);
        } else if (ghost) {
          // Its fingerprint is compared before the resume or adopt is sent (Transfers.resume / announce).
          ghost.file = file;
          ghost.origin = origin;
          ghost.fingerprint = fingerprintOf(file);
          ghost.status = slot.auto_upload === false ? PENDING : QUEUED;
          added.push(ghost);
        } else {
          fresh.push(file);
        }
      }
      if (maxEntries === 1 && (fresh.length || added.length)) {
        // A single-file field: a new choice replaces the previous, unconsumed one (an earlier page's ghost is
        // not this page's choice: it stays until its file is chosen or it is discarded).
        for (const previous of this.entries.filter((e) => e.slotName === slotName && !added.includes(e) &&
          !e.isGhost)) this.cancel(previous, true);
      }
      const room = Math.max(0, maxEntries - this.activeEntries(slotName).length);
      fresh.forEach((file, index) => {
        if (index >= room) {
          this.reject(file, slotName, origin, "too_many_files",
            `${file.name}: ${slotName} takes at most ${maxEntries} file(s).`);
          return;
        }
        const entry = new Entry(this, slotName, file, origin, null);
        entry.fingerprint = fingerprintOf(file);
        entry.status = slot.auto_upload === false ? PENDING : QUEUED;
        this.entries.push(entry);
        added.push(entry);
      });
      for (const entry of added) if (this.connection.isUnreachable && entry.status === QUEUED) this.markUnreachable(entry);
      this.render(slotName);
      if (added.some((e) => e.status === QUEUED)) this.transfers.pump();
      return added;
    }

    /** The file chosen for an interrupted entry is another file: it becomes a new upload, the entry waits on. */
    notItsFile(ghost) {
      const file = ghost.file;
      const entry = new Entry(this, ghost.slotName, file, ghost.origin, null);
      entry.fingerprint = ghost.fingerprint;
      entry.status = QUEUED;
      ghost.file = null;
      ghost.origin = null;
      ghost.fingerprint = null;
      ghost.status = INTERRUPTED;
      this.entries.push(entry);
      this.changed(ghost);
    }

    reject(file, slotName, origin, code, text) {
      const error = text || message(code);
      Announcer.say(`${file.name}: ${error}`, true);
      dispatch(this.eventTarget(origin, slotName), "djust:upload:error",
        { file: file.name, error, code, ref: null, uploadName: slotName, size: file.size });
    }

    /**
     * Earlier pages' interrupted uploads that `welcome` offers (a reload): each in a slot of this page becomes a
     * ghost — an `interrupted` item with a Discard button, not counted against max_entries — and is announced
     * once. A ghost whose entry is no longer offered (grace over, continued in another tab) goes.
     */
    showAdoptable(rows) {
      const offered = new Map(rows.map((row) => [row.entry, row]));
      const touched = new Set();
      for (const ghost of this.entries.filter((e) => e.isGhost)) {
        const row = offered.get(ghost.earlier.entry);
        if (row) {
          ghost.earlier = row;
          ghost.ackedOffset = row.offset || 0;
        } else {
          this.entries.splice(this.entries.indexOf(ghost), 1);
        }
        touched.add(ghost.slotName);
      }
      const shown = [];
      for (const row of rows) {
        if (!this.slot(row.slot) || this.entries.some((e) => e.earlier && e.earlier.entry === row.entry)) continue;
        const ghost = new Entry(this, row.slot, null, null, row);
        ghost.entryId = null;        // the id is the earlier page's: `adopt` or `discard` names it, never `resume`
        ghost.expectedFingerprint = null;
        ghost.earlier = row;
        ghost.status = INTERRUPTED;
        this.entries.push(ghost);
        touched.add(row.slot);
        if (!this.announcedGhosts.has(row.entry)) shown.push(ghost);
      }
      for (const slotName of touched) this.render(slotName);
      for (const ghost of shown) this.announcedGhosts.add(ghost.earlier.entry);
      if (shown.length) {
        Announcer.say(shown.map((g) => `Interrupted upload: ${progressLabel(g, g.progress)}, or discard it.`)
          .join(" "), false);
      }
      this.checkSettled();
    }

    /** Another file of this page continues an earlier page's entry: the ghost that stood for it goes. */
    dropGhosts(earlierId) {
      for (const ghost of this.entries.filter((e) => e.isGhost && e.earlier.entry === earlierId)) this.forget(ghost);
    }

    /** The ghost's Discard: the server deletes the earlier page's entry; the ghost goes once it says so. */
    discard(ghost) {
      if (ghost.discarding) return;
      ghost.discarding = true;
      this.transfers.discard(ghost);
    }

    /** An entry the server listed that this page does not hold (see Transfers.welcome). */
    addServerEntry(row) {
      if (row.status === CANCELLED || !this.slot(row.slot)) return;
      const entry = new Entry(this, row.slot, null, null, row);
      this.entries.push(entry);
      this.adoptRow(entry, row);
    }

    /** Take the server's word on an entry that this page cannot send (handed over, moved or never chosen here). */
    adoptRow(entry, row) {
      if (row.entry !== undefined) entry.entryId = row.entry;
      if (row.fingerprint) entry.expectedFingerprint = row.fingerprint;
      if (row.status === COMPLETE) {
        entry.status = COMPLETE;
        entry.ackedOffset = entry.sentOffset = entry.size;
        entry.sha256 = row.sha256 || entry.sha256;
      } else if (row.status === ERROR) {
        entry.status = ERROR;
        entry.code = row.code || "storage_failed";
        entry.message = row.message || message(entry.code);
      } else if (!entry.file) {
        // Paused: waits for its file to be chosen again; uploading: over another connection of the session.
        entry.status = row.status === "paused" ? INTERRUPTED : MOVED;
        entry.ackedOffset = row.offset || 0;
      } else {
        // A moved entry whose other connection went away (paused) is this page's to resume again.
        entry.status = row.status === "paused" ? QUEUED : MOVED;
      }
      this.changed(entry);
    }

    /** Start held (auto_upload=False) entries; resolves when every entry of this view has finished. */
    uploadAll() {
      let started = false;
      for (const entry of this.entries) {
        if (entry.status === PENDING) {
          this.setStatus(entry, QUEUED);
          if (this.connection.isUnreachable) this.markUnreachable(entry);
          started = true;
        }
      }
      if (started || this.needsConnection()) this.transfers.pump();
      return this.whenSettled();
    }

    whenSettled() {
      if (this.isSettled()) return Promise.resolve(this.entries.map((e) => e.snapshot()));
      return new Promise((resolve) => this.settleWaiters.push(resolve));
    }

    checkSettled() {
      if (!this.settleWaiters.length || !this.isSettled()) return;
      const waiters = this.settleWaiters;
      this.settleWaiters = [];
      const snapshot = this.entries.map((e) => e.snapshot());
      for (const resolve of waiters) resolve(snapshot);
    }

    setStatus(entry, status, announce) {
      entry.status = status;
      this.changed(entry, announce);
    }

    complete(entry, sha256) {
      entry.status = COMPLETE;
      entry.ackedOffset = entry.sentOffset = entry.size;
      entry.sha256 = sha256 || entry.sha256;
      Announcer.say(`${entry.name} uploaded.`, false);
      this.changed(entry, true);
    }

    fail(entry, code, text) {
      entry.status = ERROR;
      entry.unreachable = false;
      entry.code = code || "storage_failed";
      entry.message = text || message(entry.code);
      this.changed(entry, true);
      this.errorEvent(entry);
    }

    /** The server cannot be reached: an error state and event, while the entry waits for the reconnect. */
    markUnreachable(entry) {
      if (entry.unreachable) return;
      entry.unreachable = true;
      entry.code = "unreachable";
      entry.message = message("unreachable");
      this.changed(entry);
      this.errorEvent(entry);
    }

    reachable(entry) {
      if (!entry.unreachable) return;
      entry.unreachable = false;
      entry.code = entry.message = null;
      this.changed(entry);
    }

    errorEvent(entry) {
      Announcer.say(`${entry.name}: ${entry.message}`, true);
      dispatch(this.eventTarget(entry.origin, entry.slotName), "djust:upload:error",
        { file: entry.name, error: entry.message, code: entry.code, ref: entry.ref,
          uploadName: entry.slotName, size: entry.size });
    }

    markCancelled(entry) {
      if (entry.status === CANCELLED) return;
      entry.status = CANCELLED;
      entry.unreachable = false;
      entry.code = "cancelled";
      entry.message = message("cancelled");
      this.changed(entry, true);
    }

    /** Cancel on the server too; the entry leaves previews and progress at once. */
    cancel(entry, quiet) {
      if (entry.status === CANCELLED) return;
      if (entry.isGhost) {
        this.discard(entry);
        return;
      }
      const wasError = entry.status === ERROR;
      const awaitingAnswer = entry.status === ANNOUNCING || entry.status === RESUMING;
      if (quiet && wasError) {
        this.forget(entry);
        return;
      }
      this.markCancelled(entry);
      if (wasError) {
        this.forget(entry);
      } else if (entry.entryId !== null) {
        // Kept until the server confirms; if offline, the welcome after the reconnect carries the cancel.
        if (!awaitingAnswer && !this.transfers.cancel(entry)) this.transfers.pump();
      } else if (!awaitingAnswer) {
        this.forget(entry);
      }
      this.render(entry.slotName);
      this.checkSettled();
    }

    forget(entry) {
      const index = this.entries.indexOf(entry);
      if (index >= 0) this.entries.splice(index, 1);
      entry.revokePreview();
      this.render(entry.slotName);
      this.checkSettled();
    }

    /**
     * An event round trip handed these finished entries to the view. They leave the page at once; the server
     * then says whether the handler consumed them (gone) or left them (they come back and still count).
     */
    delivered(entries) {
      for (const entry of entries) {
        if (!this.entries.includes(entry) || (entry.status !== COMPLETE && entry.status !== ERROR)) continue;
        if (entry.entryId === null) {
          this.forget(entry);
        } else {
          entry.probed = false;
          entry.revokePreview();
          this.setStatus(entry, DELIVERED);
        }
      }
      this.transfers.pump();
    }

    changed(entry, announce) {
      this.render(entry.slotName);
      if (announce && entry.status !== PENDING) {
        dispatch(this.eventTarget(entry.origin, entry.slotName), "djust:upload:progress",
          { ref: entry.ref, progress: entry.progress, status: entry.publicStatus, uploadName: entry.slotName,
            name: entry.name, size: entry.size, sha256: entry.sha256 });
      }
      this.checkSettled();
    }

    eventTarget(origin, slotName) {
      if (origin && origin.isConnected) return origin;
      const root = this.root;
      if (!root) return null;
      return root.querySelector(`[dj-upload="${CSS.escape(slotName)}"]`) || root;
    }

    // Containers are reconciled from state, so they survive a swap of the DOM under them.
    containers(kind, slotName) {
      const root = this.root;
      if (!root) return [];
      const name = kind === "preview" ? "dj-upload-preview" : "dj-upload-progress";
      const list = Array.from(root.querySelectorAll(`[${name}="${CSS.escape(slotName)}"]`));
      if (root.getAttribute(name) === slotName) list.unshift(root);
      return list;
    }

    render(slotName) {
      for (const container of this.containers("preview", slotName)) Render.previews(this, container, slotName);
      for (const container of this.containers("progress", slotName)) Render.progress(this, container, slotName);
    }
  }

  // ============================================================================================== 9. Render
  // Owns: the DOM the client writes — preview and progress items (from entry state, idempotent) and the
  // visually hidden aria-live regions that announce completion and errors.

  const Announcer = {
    /** Speak `text` through a polite (completion) or assertive (error) live region on the body. */
    say(text, urgent) {
      const region = Announcer.region(urgent);
      if (!region) return;
      // A changed text node is what screen readers announce; clearing first makes a repeated message speak again.
      region.textContent = "";
      global.setTimeout(() => { region.textContent = text; }, 50);
    },

    region(urgent) {
      if (!document.body) return null;
      const id = urgent ? "dj-upload-alerts" : "dj-upload-status";
      let region = document.getElementById(id);
      if (!region) {
        region = element("div", "upload-live");
        region.id = id;
        region.setAttribute("aria-live", urgent ? "assertive" : "polite");
        region.setAttribute("aria-atomic", "true");
        region.setAttribute("role", urgent ? "alert" : "status");
        // Inline, so the region is hidden but readable even without uploads.css.
        region.style.cssText = "position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;" +
          "clip:rect(0 0 0 0);clip-path:inset(50%);white-space:nowrap;border:0";
        document.body.append(region);
      }
      return region;
    },
  };

  function showsPreview(entry) {
    // A ghost has no file to preview: its progress item says what it is.
    return entry.status !== CANCELLED && entry.status !== DELIVERED && !entry.isGhost;
  }

  function showsProgress(entry) {
    return entry.status !== CANCELLED && entry.status !== PENDING && entry.status !== DELIVERED;
  }

  function reconcile(container, entries, itemClass, build, update) {
    const wanted = new Map(entries.map((e) => [e.ref, e]));
    for (const item of Array.from(container.querySelectorAll(`:scope > .${itemClass}`))) {
      if (!wanted.has(item.getAttribute("data-upload-ref"))) item.remove();
    }
    let previous = null;
    for (const entry of entries) {
      let item = container.querySelector(`:scope > .${itemClass}[data-upload-ref="${CSS.escape(entry.ref)}"]`);
      if (!item) {
        item = build(entry);
        if (previous) previous.after(item);
        else container.append(item);
      }
      update(item, entry);
      previous = item;
    }
  }

  function cancelButton(entry, className) {
    const button = element("button", className, "\u00d7");
    button.type = "button";
    button.setAttribute("dj-upload-cancel", entry.ref);
    button.setAttribute("aria-label", `Remove ${entry.name}`);
    return button;
  }

  /** A ghost's control: the earlier page's upload is deleted on the server (`discard`), not just hidden. */
  function discardButton(entry) {
    const button = element("button", "upload-progress-discard", "Discard");
    button.type = "button";
    button.setAttribute("dj-upload-cancel", entry.ref);
    button.setAttribute("aria-label", `Discard ${entry.name}`);
    return button;
  }

  function progressControl(entry) {
    return entry.isGhost ? discardButton(entry) : cancelButton(entry, "upload-progress-cancel");
  }

  function setStatusAttribute(item, entry) {
    const status = entry.displayStatus;
    if (item.getAttribute("data-upload-status") !== status) item.setAttribute("data-upload-status", status);
    if (entry.code) item.setAttribute("data-upload-code", entry.code);
    else item.removeAttribute("data-upload-code");
  }

  function progressLabel(entry, progress) {
    if (entry.status === ERROR || entry.unreachable) return entry.message;
    if (entry.status === PAUSED) return `${progress}% (reconnecting\u2026)`;
    if (entry.status === MOVED) return `${progress}% (continued in another window)`;
    if (entry.status === INTERRUPTED) return `${entry.name} \u2014 ${progress} %, choose it again to continue`;
    return `${progress}%`;
  }

  const Render = {
    previews(view, container, slotName) {
      const entries = view.entries.filter((e) => e.slotName === slotName && showsPreview(e));
      reconcile(container, entries, "upload-preview-item", (entry) => {
        const item = element("div", "upload-preview-item");
        item.setAttribute("data-upload-ref", entry.ref);
        if (entry.file && /^image\//i.test(entry.type)) {
          if (!entry.previewUrl) entry.previewUrl = URL.createObjectURL(entry.file);
          const image = element("img", "upload-preview-image");
          image.src = entry.previewUrl;
          image.alt = entry.name;
          item.append(image);
        }
        item.append(element("span", "upload-preview-name", entry.relativePath || entry.name),
          element("span", "upload-preview-size", formatBytes(entry.size)),
          cancelButton(entry, "upload-preview-remove"));
        return item;
      }, setStatusAttribute);
    },

    progress(view, container, slotName) {
      const entries = view.entries.filter((e) => e.slotName === slotName && showsProgress(e));
      reconcile(container, entries, "upload-progress-item", (entry) => {
        const item = element("div", "upload-progress-item");
        item.setAttribute("data-upload-ref", entry.ref);
        const track = element("div", "upload-progress-track");
        const bar = element("div", "upload-progress-bar");
        bar.setAttribute("role", "progressbar");
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "100");
        bar.setAttribute("aria-label", `Upload of ${entry.name}`);
        track.append(bar);
        item.append(element("span", "upload-progress-name", entry.relativePath || entry.name), track,
          element("span", "upload-progress-text"), progressControl(entry));
        return item;
      }, (item, entry) => {
        // A ghost whose file was chosen again is the upload now: its Discard becomes the usual cancel.
        const control = item.querySelector(":scope > [dj-upload-cancel]");
        if (control && control.classList.contains("upload-progress-discard") !== entry.isGhost) {
          control.replaceWith(progressControl(entry));
        }
        const progress = entry.progress;
        const bar = item.querySelector(".upload-progress-bar");
        const text = item.querySelector(".upload-progress-text");
        setStatusAttribute(item, entry);
        if (bar.getAttribute("aria-valuenow") !== String(progress)) {
          bar.setAttribute("aria-valuenow", String(progress));
          bar.style.width = `${progress}%`;
        }
        const label = progressLabel(entry, progress);
        if (text.textContent !== label) text.textContent = label;
        const valueText = label === `${progress}%` ? "" : label;
        if (valueText) bar.setAttribute("aria-valuetext", valueText);
        else if (bar.hasAttribute("aria-valuetext")) bar.removeAttribute("aria-valuetext");
      });
    },
  };

  // ========================================================================================== 10. Directives
  // Owns: turning DOM input into View.addFiles / View.cancel — file inputs, drop zones (files and folders), paste,
  // the drop zone's keyboard and click behaviour, cancel controls — and binding directives to slot configs.

  const views = new Map();

  function viewFor(node) {
    let root = node && node.closest ? node.closest(SELECTOR.root) : null;
    if (!root && node && node.matches && node.matches(SELECTOR.input)) {
      // An input outside any root: use the root whose config has its slot.
      const name = attr(node, "dj-upload");
      root = Array.from(document.querySelectorAll(SELECTOR.root)).find((r) => {
        try { return name in (JSON.parse(r.getAttribute("data-dj-uploads") || "{}").slots || {}); }
        catch (error) { return false; }
      }) || null;
    }
    if (!root) return null;
    const id = root.getAttribute("data-dj-view") || "";
    let view = views.get(id);
    if (!view) {
      view = new View(id);
      views.set(id, view);
    }
    view.configure(root);
    return view;
  }

  function zoneInput(zone) {
    return zone.querySelector(`input[type="file"][dj-upload="${CSS.escape(attr(zone, "dj-upload-drop"))}"]`);
  }

  /** Bind everything under the document: idempotent, re-run after every DOM change (swap or other). */
  function scan() {
    bindDocument();
    const touched = new Map();
    for (const root of document.querySelectorAll(SELECTOR.root)) touched.set(root, viewFor(root));
    for (const input of document.querySelectorAll(SELECTOR.input)) {
      const view = viewFor(input);
      const slot = view && view.slot(attr(input, "dj-upload"));
      if (!slot) continue;
      if (slot.accept) {
        if (input.getAttribute("accept") !== slot.accept) input.setAttribute("accept", slot.accept);
      } else if (input.hasAttribute("accept")) {
        input.removeAttribute("accept");
      }
      input.multiple = (slot.max_entries || 1) > 1;
      if (!input.labels.length && !input.hasAttribute("aria-label") && !input.hasAttribute("aria-labelledby")) {
        // The seed's templates leave the input unlabelled inside its drop zone: name it after the zone's text.
        const zone = input.closest(SELECTOR.drop);
        const hint = zone ? zone.textContent.replace(/\s+/g, " ").trim() : "";
        input.setAttribute("aria-label", hint || `Choose ${slot.max_entries > 1 ? "files" : "a file"}`);
      }
    }
    for (const zone of document.querySelectorAll(SELECTOR.drop)) {
      // Keyboard users reach the zone with Tab; Enter or Space opens its file dialog (onKeyDown).
      if (!zone.hasAttribute("tabindex") && zoneInput(zone)) zone.setAttribute("tabindex", "0");
    }
    for (const view of new Set(touched.values())) {
      if (!view) continue;
      for (const slotName of Object.keys(view.config.slots || {})) view.render(slotName);
    }
  }

  let scanQueued = false;
  function queueScan() {
    if (scanQueued) return;
    scanQueued = true;
    queueMicrotask(() => { scanQueued = false; scan(); });
  }

  function onChange(event) {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.hasAttribute("dj-upload")) return;
    const view = viewFor(input);
    const files = Array.from(input.files || []);
    // Clear the input so choosing the same file again fires `change`; the client holds the File now.
    input.value = "";
    if (!view || !files.length) return;
    view.addFiles(attr(input, "dj-upload"), files, input);
  }

  // -- drag and drop --

  // Per zone, the elements the drag is currently inside: the class goes when the set empties, which stays
  // right across nested children (dragenter on the child fires before dragleave on the parent).
  const dragInside = new WeakMap();

  function isFileDrag(event) {
    const types = event.dataTransfer ? Array.from(event.dataTransfer.types || []) : [];
    return types.includes("Files");
  }

  function dropZone(event) {
    return event.target instanceof Element ? event.target.closest(SELECTOR.drop) : null;
  }

  function clearDrag(zone) {
    dragInside.delete(zone);
    zone.classList.remove("upload-dragover");
  }

  function onDragEnter(event) {
    const zone = dropZone(event);
    if (!zone || !isFileDrag(event)) return;
    event.preventDefault();
    let inside = dragInside.get(zone);
    if (!inside) dragInside.set(zone, (inside = new Set()));
    inside.add(event.target);
    zone.classList.add("upload-dragover");
  }

  function onDragOver(event) {
    const zone = dropZone(event);
    if (!zone || !isFileDrag(event)) return;
    event.preventDefault(); // allows the drop
    event.dataTransfer.dropEffect = "copy";
    if (!zone.classList.contains("upload-dragover")) {
      // dragenter was missed (the zone was swapped in mid-drag): recover.
      if (!dragInside.has(zone)) dragInside.set(zone, new Set([event.target]));
      zone.classList.add("upload-dragover");
    }
  }

  function onDragLeave(event) {
    const zone = dropZone(event);
    if (!zone) return;
    const inside = dragInside.get(zone);
    if (inside) {
      inside.delete(event.target);
      for (const node of Array.from(inside)) if (!node.isConnected || !zone.contains(node)) inside.delete(node);
    }
    if (!inside || inside.size === 0) clearDrag(zone);
  }

  /** The files of a folder tree (FileSystemDirectoryEntry), each with its path; at most `limit` of them. */
  async function filesOfEntries(entries, limit) {
    const files = [];
    const readAll = (reader) => new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    const fileOf = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));
    const walk = async (entry) => {
      if (files.length >= limit) return;
      if (entry.isFile) {
        const file = await fileOf(entry);
        // The path inside the drop ("holiday/day1/a.png"), as webkitRelativePath would say for an input.
        Object.defineProperty(file, "djRelativePath", { value: entry.fullPath.replace(/^\/+/, "") });
        files.push(file);
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        // readEntries answers in batches (100 in Chromium) until an empty one.
        for (let batch = await readAll(reader); batch.length && files.length < limit; batch = await readAll(reader)) {
          for (const child of batch) await walk(child);
        }
      }
    };
    for (const entry of entries) await walk(entry);
    return files;
  }

  function onDrop(event) {
    const zone = dropZone(event);
    for (const other of document.querySelectorAll(".upload-dragover")) {
      if (other.hasAttribute("dj-upload-drop")) clearDrag(other);
    }
    if (!zone || !event.dataTransfer) return;
    const transfer = event.dataTransfer;
    const files = Array.from(transfer.files || []);
    if (!files.length && !isFileDrag(event)) return;
    event.preventDefault(); // the browser must not open the file, nor a file input take it
    const view = viewFor(zone);
    if (!view) return;
    const slotName = attr(zone, "dj-upload-drop");
    // Entries must be taken during the event: the DataTransfer is emptied once it returns.
    const entries = Array.from(transfer.items || [], (item) =>
      item.kind === "file" && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null);
    if (!entries.some((entry) => entry && entry.isDirectory)) {
      if (files.length) view.addFiles(slotName, files, zone);
      return;
    }
    // A folder: its files, bounded by one more than the slot takes (so an excess is reported, never walked).
    const slot = view.slot(slotName);
    const limit = (slot ? slot.max_entries || 1 : 1) + 1;
    const loose = files.filter((file, index) => !entries[index] || entries[index].isFile);
    filesOfEntries(entries.filter((entry) => entry && entry.isDirectory), limit).then((found) => {
      view.addFiles(slotName, loose.concat(found), zone);
    }, (error) => console.error("twisted-uploads: could not read the dropped folder", error));
  }

  function onDragEnd() {
    for (const zone of document.querySelectorAll(`${SELECTOR.drop}.upload-dragover`)) clearDrag(zone);
  }

  // -- paste: an image (or any file) pasted into a page with a drop zone uploads like a dropped file --

  function onPaste(event) {
    const data = event.clipboardData;
    if (!data) return;
    const files = Array.from(data.files || []);
    if (!files.length) {
      for (const item of Array.from(data.items || [])) {
        const file = item.kind === "file" ? item.getAsFile() : null;
        if (file) files.push(file);
      }
    }
    if (!files.length) return;
    // The zone around the focus or the paste target, else the page's first zone.
    const from = event.target instanceof Element ? event.target : document.activeElement;
    const zone = (from && from.closest && from.closest(SELECTOR.drop)) || document.querySelector(SELECTOR.drop);
    const view = zone && viewFor(zone);
    if (!view) return;
    event.preventDefault();
    view.addFiles(attr(zone, "dj-upload-drop"), files, zone);
  }

  // -- keyboard and clicks --

  function onKeyDown(event) {
    if (event.key !== "Enter" && event.key !== " ") return;
    const zone = event.target instanceof Element && event.target.matches(SELECTOR.drop) ? event.target : null;
    if (!zone) return;
    const input = zoneInput(zone);
    if (!input) return;
    event.preventDefault(); // Space must not scroll the page
    input.click();
  }

  function onClick(event) {
    if (!(event.target instanceof Element)) return;
    const cancel = event.target.closest("[dj-upload-cancel]");
    if (cancel) {
      event.preventDefault();
      const item = cancel.closest("[data-upload-ref]");
      const ref = attr(cancel, "dj-upload-cancel") || (item ? attr(item, "data-upload-ref") : "");
      if (ref) cancelUpload(ref);
      return;
    }
    const clickable = event.target.closest("[dj-click]");
    if (clickable && !clickable.disabled) {
      event.preventDefault();
      LiveEvents.click(clickable);
      return;
    }
    // "Drag photos here or click to browse": a click on the zone's own surface opens its file input.
    const zone = event.target.closest(SELECTOR.drop);
    if (zone && !event.target.closest("input, button, a, label, select, textarea, [dj-upload-preview], [dj-upload-progress]")) {
      const input = zoneInput(zone);
      if (input) input.click();
    }
  }

  // ========================================================================================== 11. LiveEvents
  // Owns: the page's HTTP round trips — dj-submit / dj-click (uploads first, then the POST, then the swap) and
  // the upload-token renewal POST that the shim answers for the same view instance.

  const LiveEvents = {
    submit(event) {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.hasAttribute("dj-submit")) return;
      const view = viewFor(form);
      if (!view) return; // no page root: let the browser post the form (the no-JavaScript path)
      event.preventDefault();
      const submitter = event.submitter || null;
      const eventName = attr(form, "dj-submit");
      LiveEvents.run(form, view, () => {
        const data = submitter ? new FormData(form, submitter) : new FormData(form);
        for (const field of Array.from(form.elements)) {
          // The files went over the WebSocket; never post them twice.
          if (field.name && field.type === "file" && field.hasAttribute("dj-upload")) data.delete(field.name);
        }
        if (!data.has("dj_event")) data.set("dj_event", eventName);
        if (!data.has("dj_view")) data.set("dj_view", view.id);
        if (!data.has("csrfmiddlewaretoken")) data.set("csrfmiddlewaretoken", csrfToken(form));
        return data;
      }, eventName);
    },

    click(trigger) {
      const view = viewFor(trigger);
      if (!view) return;
      const eventName = attr(trigger, "dj-click");
      LiveEvents.run(trigger, view, () => {
        const data = new FormData();
        data.set("dj_event", eventName);
        data.set("dj_view", view.id);
        data.set("csrfmiddlewaretoken", csrfToken(view.root));
        for (const { name, value } of Array.from(trigger.attributes)) {
          // data-item-id="3" arrives as item_id=3 (a keyword argument of the handler).
          if (name.startsWith("data-") && name !== "data-dj-busy") data.set(name.slice(5).replace(/-/g, "_"), value);
        }
        return data;
      }, eventName);
    },

    /** Uploads first (held ones start now), then the event: the view always sees finished entries. */
    async run(trigger, view, buildForm, eventName) {
      if (trigger.hasAttribute("data-dj-busy")) return;
      trigger.setAttribute("data-dj-busy", "");
      trigger.setAttribute("aria-busy", "true");
      try {
        await view.uploadAll();
        const handedOver = view.entries.filter((e) => e.status === COMPLETE || e.status === ERROR);
        if (await LiveEvents.send(view, buildForm(), trigger, eventName)) view.delivered(handedOver);
      } catch (error) {
        dispatch(trigger, "djust:event:error", { event: eventName, status: 0, view: view.id, error: String(error) });
        console.error("twisted-uploads: event failed", error);
      } finally {
        trigger.removeAttribute("data-dj-busy");
        trigger.removeAttribute("aria-busy");
      }
    },

    async send(view, form, trigger, eventName) {
      const response = await fetch(global.location.href, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: { "X-DJ-Request": "1", "X-CSRFToken": csrfToken(trigger.closest("form") || view.root) },
      });
      if (!response.ok) {
        dispatch(trigger, "djust:event:error", { event: eventName, status: response.status, view: view.id });
        console.error(`twisted-uploads: ${eventName} answered HTTP ${response.status}`);
        return false;
      }
      if (response.redirected) {
        // The handler answered with a redirect (return redirect(...)): follow it as a navigation.
        global.location.assign(response.url);
        return true;
      }
      const html = await response.text();
      if (!LiveEvents.swap(view, html, eventName)) {
        // The handler answered with some other page: show it as the browser would have after a form post.
        // document.open() drops every listener of the document, so bind again once it is written.
        document.open();
        document.write(html);
        document.close();
        scan();
      }
      return true;
    },

    swap(view, html, eventName) {
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      const fresh = template.content.querySelector(SELECTOR.root);
      const old = view.root;
      if (!fresh || !old) return false;
      const focusedId = document.activeElement && old.contains(document.activeElement) ? document.activeElement.id : "";
      old.replaceWith(fresh);
      scan(); // bind now, not at the next observer tick, so previews and progress never flash empty
      if (focusedId) {
        const again = document.getElementById(focusedId);
        if (again) again.focus();
      }
      dispatch(fresh, "djust:view:updated", { view: fresh.getAttribute("data-dj-view"), event: eventName });
      return true;
    },

    /**
     * A fresh upload token for this view instance (same upload session), from the page's own URL: the shim's
     * LiveView answers `dj_upload_token=renew` (CSRF-checked, only for a view stored in this Django session)
     * with {"token": ...}. Resolves true once the view has it.
     */
    async renewToken(view) {
      const data = new FormData();
      data.set("dj_upload_token", "renew");
      data.set("dj_view", view.id);
      data.set("csrfmiddlewaretoken", csrfToken(view.root));
      try {
        const response = await fetch(global.location.href, {
          method: "POST", body: data, credentials: "same-origin",
          headers: { "X-DJ-Request": "1", "X-CSRFToken": csrfToken(view.root), "Accept": "application/json" },
        });
        const type = response.headers.get("content-type") || "";
        if (!response.ok || !type.includes("application/json")) return false;
        const answer = await response.json();
        if (typeof answer.token !== "string" || !answer.token) return false;
        view.config.token = answer.token;
        return true;
      } catch (error) {
        console.error("twisted-uploads: could not renew the upload token", error);
        return false;
      }
    },
  };

  // ====================================================================================== 12. API and start

  function allEntries() {
    return Array.from(views.values()).flatMap((view) => view.entries);
  }

  function cancelUpload(ref) {
    const entry = allEntries().find((e) => e.ref === ref);
    if (!entry) return false;
    entry.view.cancel(entry);
    return true;
  }

  function viewOf(scope) {
    if (!scope) return views.size ? viewFor(document.querySelector(SELECTOR.root)) : null;
    if (typeof scope === "string") return views.get(scope) || null;
    return viewFor(scope);
  }

  const EVENT_PREFIX = "djust:upload:";
  const listeners = new Map();

  function fullEventName(name) {
    return name.includes(":") ? name : EVENT_PREFIX + name;
  }

  function uploading() {
    return allEntries().some((e) => UNFINISHED.has(e.status));
  }

  global.djUploads = Object.freeze({
    version: VERSION,
    protocol: 1,
    errorMessages: ERROR_MESSAGES,
    /** Snapshots of the entries this page holds, optionally of one slot (handed-over ones excluded). */
    entries(slotName) {
      return allEntries().filter((e) => (!slotName || e.slotName === slotName) && e.status !== DELIVERED)
        .map((e) => e.snapshot());
    },
    /** Cancel one upload by its ref (also on the server); false when the ref is unknown. */
    cancel: cancelUpload,
    /** Add files to a slot from script, with the same checks as an input. Returns the new refs. */
    addFiles(slotName, files, scope) {
      const view = viewOf(scope);
      if (!view) return [];
      return view.addFiles(slotName, Array.from(files), null).map((e) => e.ref);
    },
    /** Start held (auto_upload=False) uploads and resolve with entry snapshots once all have finished. */
    upload(scope) {
      const view = viewOf(scope);
      return view ? view.uploadAll() : Promise.resolve([]);
    },
    /** Resolve once no upload of the view is pending or running. */
    whenSettled(scope) {
      const view = viewOf(scope);
      return view ? view.whenSettled() : Promise.resolve([]);
    },
    /** Listen to djust:upload:<name> ("progress", "error") or any full event name on window. */
    on(name, handler) {
      const wrapped = (event) => handler(event.detail, event);
      listeners.set(handler, wrapped);
      global.addEventListener(fullEventName(name), wrapped);
      return handler;
    },
    off(name, handler) {
      const wrapped = listeners.get(handler);
      if (wrapped) global.removeEventListener(fullEventName(name), wrapped);
      listeners.delete(handler);
    },
    /** The view's WebSocket: state (idle, connecting, open, waiting, renewing, failed), sockets, failures. */
    connection(scope) {
      const view = viewOf(scope);
      if (!view) return null;
      const connection = view.connection;
      return { state: connection.state, sockets: connection.wsCount, failures: connection.backoff.failures };
    },
    /** Close the WebSocket as a network failure would; the client reconnects and resumes. */
    reconnect(scope) {
      const view = viewOf(scope);
      if (view) view.connection.drop();
    },
    /** Re-bind directives now (the MutationObserver does this after DOM changes). */
    scan,
    formatBytes,
    accepts,
    message,
  });

  const observer = new MutationObserver(queueScan);
  let boundTo = null;

  /**
   * Listen on the document as it is now. Idempotent: addEventListener ignores a listener already there, and
   * after document.open() (which drops every document listener and replaces documentElement) this binds again.
   */
  function bindDocument() {
    if (boundTo === document.documentElement || !document.documentElement) return;
    boundTo = document.documentElement;
    document.addEventListener("change", onChange);
    document.addEventListener("dragenter", onDragEnter);
    document.addEventListener("dragover", onDragOver);
    document.addEventListener("dragleave", onDragLeave);
    document.addEventListener("drop", onDrop);
    document.addEventListener("dragend", onDragEnd);
    document.addEventListener("paste", onPaste);
    document.addEventListener("keydown", onKeyDown);
    document.addEventListener("click", onClick);
    document.addEventListener("submit", LiveEvents.submit);
    observer.observe(document.documentElement, {
      childList: true, subtree: true, attributes: true,
      attributeFilter: ["data-dj-uploads", "data-dj-view", "dj-upload", "dj-upload-drop", "dj-upload-preview",
                        "dj-upload-progress"],
    });
  }

  global.addEventListener("online", () => { for (const view of views.values()) view.connection.reconnectNow(); });
  // Leaving the page mid-upload loses what is not sent yet: ask first (browsers show their own wording).
  global.addEventListener("beforeunload", (event) => {
    if (!uploading()) return;
    event.preventDefault();
    event.returnValue = "";
  });

  // Leaving (a reload) mid-upload: close the socket now, so the server pauses the entries at once, and tell the
  // next page of this tab which entries were in flight (LeftBehind).
  global.addEventListener("pagehide", () => {
    const inFlight = allEntries().filter((e) => UNFINISHED.has(e.status) && e.entryId !== null);
    LeftBehind.store(inFlight.map((e) => e.entryId));
    for (const view of views.values()) view.connection.leave();
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})(window);
