/*!
 * twisted-uploads browser client — chunked, resumable WebSocket uploads for the djust File Uploads API.
 *
 * One file, no build step, ES2020. Behaviour comes from attributes inside a page root
 * `<div data-dj-view="ID" data-dj-uploads='{"url": ..., "token": ..., "slots": {...}}'>`:
 *
 *   dj-upload="slot"            file input: accept/multiple from the slot config, checks, then upload
 *   dj-upload-drop="slot"       drop zone (class upload-dragover while files are dragged over it)
 *   dj-upload-preview="slot"    previews: .upload-preview-item > .upload-preview-image/-name/-size
 *   dj-upload-progress="slot"   progress: .upload-progress-item[data-upload-ref] > name, track > bar, text
 *   dj-upload-cancel[="ref"]    a control that cancels one upload (the ref, or the enclosing item's)
 *   dj-submit / dj-click        LiveView events: wait for uploads, POST, swap in the re-rendered root
 *
 * Events (bubbling from the element, so also on window): djust:upload:progress {ref, progress, status,
 * uploadName} and djust:upload:error {file, error, code, ref, uploadName}. JavaScript API: window.djUploads
 * (docs/browser.md). Wire protocol: docs/protocol.md.
 */
(function (global) {
  "use strict";

  if (global.djUploads) return; // included twice: keep the first instance and its state

  const VERSION = "0.1.0";
  const SUBPROTOCOL = "twisted-uploads.v1";
  const FRAME_HEADER_BYTES = 12;
  const DEFAULT_WS_PATH = "/uploads/ws";
  const RECONNECT_BASE_MS = 500;
  const RECONNECT_MAX_MS = 15000;
  const SERVER_BUSY_RETRY_MS = 1000;
  const MAX_REANNOUNCES = 3;
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
    "unreachable": "The upload server cannot be reached; retrying."
  });

  // allow_upload()'s defaults (twisted_uploads/slots.py SlotConfig), for fields a page leaves out.
  const SLOT_DEFAULTS = Object.freeze({
    accept: "", max_entries: 1, max_file_size: 10000000, chunk_size: 65536, auto_upload: true,
  });

  // Close codes after which reconnecting with the same token cannot help (docs/protocol.md §10).
  const FATAL_CLOSE_CODES = Object.freeze({ 4001: "invalid_token", 4002: "protocol_error", 1009: "frame_too_large" });

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
  const IN_FLIGHT = new Set([ANNOUNCING, RESUMING, UPLOADING]);
  const UNFINISHED = new Set([QUEUED, ANNOUNCING, RESUMING, UPLOADING, PAUSED]);

  const SELECTOR = {
    root: "[data-dj-view]",
    input: "[dj-upload]",
    drop: "[dj-upload-drop]",
    preview: "[dj-upload-preview]",
    progress: "[dj-upload-progress]",
  };

  // ---------------------------------------------------------------------------------------------- helpers

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

  function isImage(file) {
    return /^image\//i.test(file.type || "");
  }

  function attr(element, name) {
    return element.getAttribute(name) || "";
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

  // ------------------------------------------------------------------------------------------------ Entry

  /** One file on its way to the server. Offsets: sent = handed to the socket, acked = stored by the server. */
  class Entry {
    constructor(view, slotName, file, origin) {
      this.ref = newRef();
      this.view = view;
      this.slotName = slotName;
      this.file = file;
      this.origin = origin;          // the element the file came from: events bubble from it
      this.entryId = null;           // the server's id, from `accepted`
      this.status = PENDING;
      this.sentOffset = 0;
      this.ackedOffset = 0;
      this.chunkSize = 0;
      this.window = 0;
      this.epoch = 0;                // bumped on every `accepted`: reads started before it are stale
      this.reading = false;
      this.code = null;
      this.message = null;
      this.sha256 = null;
      this.resumeCount = 0;
      this.reannounceCount = 0;
      this.previewUrl = null;
    }

    get size() { return this.file.size; }

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

    snapshot() {
      return {
        ref: this.ref, uploadName: this.slotName, view: this.view.id, name: this.file.name, size: this.size,
        type: this.file.type, status: this.status, progress: this.progress, entry: this.entryId,
        sentOffset: this.sentOffset, ackedOffset: this.ackedOffset, code: this.code, error: this.message,
        sha256: this.sha256, resumeCount: this.resumeCount,
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

  // ------------------------------------------------------------------------------------------- Connection

  /** One WebSocket per page root: auth, welcome, announces, windowed sending, reconnect and resume. */
  class Connection {
    constructor(view) {
      this.view = view;
      this.ws = null;
      this.state = "idle";           // idle | connecting | open | waiting (backoff) | failed
      this.attempt = 0;
      this.timer = null;
      this.retryTimer = null;
      this.maxParallel = DEFAULT_MAX_PARALLEL;
      this.serverSlots = {};
      this.awaiting = new Map();     // ref -> entry whose announce/resume is unanswered
      this.lastErrorCode = null;
      this.failedToken = null;
      this.wsCount = 0;
    }

    url() {
      const configured = this.view.config.url || DEFAULT_WS_PATH;
      if (/^wss?:\/\//i.test(configured)) return configured;
      if (/^https?:\/\//i.test(configured)) return configured.replace(/^http/i, "ws");
      const scheme = global.location.protocol === "https:" ? "wss:" : "ws:";
      const path = configured.startsWith("/") ? configured : `/${configured}`;
      return `${scheme}//${global.location.host}${path}`;
    }

    ensureOpen() {
      if (this.state === "open" || this.state === "connecting" || this.state === "waiting") return;
      if (this.state === "failed" && this.view.config.token === this.failedToken) return;
      this.connect();
    }

    connect() {
      clearTimeout(this.timer);
      this.timer = null;
      this.state = "connecting";
      this.lastErrorCode = null;
      let ws;
      try {
        ws = new WebSocket(this.url(), SUBPROTOCOL);
      } catch (error) {
        console.error("twisted-uploads: cannot open the upload WebSocket", error);
        this.scheduleReconnect();
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.wsCount += 1;
      ws.onopen = () => { if (ws === this.ws) this.sendJSON({ type: "auth", token: this.view.config.token }); };
      ws.onmessage = (event) => { if (ws === this.ws) this.onMessage(event.data); };
      ws.onclose = (event) => { if (ws === this.ws) this.onClose(event); };
      ws.onerror = () => {}; // a close event always follows
    }

    /** Drop the socket as if the network failed (tests and `djUploads.reconnect()`); resume follows. */
    drop() {
      if (this.ws) this.ws.close(4000, "client reconnect");
    }

    sendJSON(payload) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(payload));
    }

    scheduleReconnect() {
      // Exponential backoff with jitter, so a restarted server is not hit by every page at once.
      const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.attempt);
      const delay = ceiling / 2 + Math.random() * (ceiling / 2);
      this.attempt += 1;
      this.state = "waiting";
      clearTimeout(this.timer);
      this.timer = setTimeout(() => { this.timer = null; this.connect(); }, delay);
    }

    reconnectNow() {
      if (this.state === "waiting") this.connect();
    }

    onClose(event) {
      this.ws = null;
      this.awaiting.clear();
      for (const entry of this.view.entries) {
        if (IN_FLIGHT.has(entry.status)) {
          entry.status = PAUSED;
          this.view.changed(entry);
        }
      }
      const fatal = FATAL_CLOSE_CODES[event.code] || (this.lastErrorCode === "invalid_token" ? "invalid_token" : null);
      if (fatal) {
        this.state = "failed";
        this.failedToken = this.view.config.token;
        for (const entry of this.view.entries.slice()) {
          if (UNFINISHED.has(entry.status)) this.view.fail(entry, fatal, null);
        }
        return;
      }
      this.state = "idle";
      if (this.view.needsConnection()) this.scheduleReconnect();
    }

    onMessage(data) {
      if (typeof data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (error) {
        console.error("twisted-uploads: malformed message from the server", data);
        return;
      }
      const handler = this[`on_${msg.type}`];
      if (typeof handler === "function") handler.call(this, msg);
    }

    on_welcome(msg) {
      this.state = "open";
      this.attempt = 0;
      this.maxParallel = msg.max_parallel || DEFAULT_MAX_PARALLEL;
      this.serverSlots = msg.slots || {};
      const listed = new Map((msg.entries || []).map((row) => [row.ref, row]));
      for (const entry of this.view.entries.slice()) {
        const row = listed.get(entry.ref);
        if (entry.status === CANCELLED) {
          // Cancelled while disconnected: tell the server now, or forget it if the server has nothing.
          if (row) this.sendJSON({ type: "cancel", entry: row.entry });
          else this.view.forget(entry);
          continue;
        }
        if (!UNFINISHED.has(entry.status)) continue;
        if (!row) {
          // The server never got it or has let it go (grace expired, server restarted): start over.
          entry.resetToStart();
          entry.status = QUEUED;
          continue;
        }
        entry.entryId = row.entry;
        if (row.status === COMPLETE) this.view.complete(entry, null);
        else if (row.status === ERROR) this.view.fail(entry, row.code || "storage_failed", null);
        else if (row.status === CANCELLED) this.view.markCancelled(entry);
        else entry.status = QUEUED; // paused or uploading elsewhere: resume it from the server's offset
      }
      this.pump();
    }

    on_accepted(msg) {
      const entry = this.awaiting.get(msg.ref) || this.view.entryById(msg.entry) || this.view.entryByRef(msg.ref);
      this.awaiting.delete(msg.ref);
      if (!entry || entry.status === CANCELLED) {
        // Replaced or cancelled while the announce was on its way: free the slot on the server.
        this.sendJSON({ type: "cancel", entry: msg.entry });
        if (entry) entry.entryId = msg.entry;
        this.pump();
        return;
      }
      const resumed = entry.status === RESUMING;
      const slot = this.serverSlots[entry.slotName] || this.view.slot(entry.slotName) || {};
      entry.entryId = msg.entry;
      entry.chunkSize = msg.chunk_size || slot.chunk_size || 65536;
      entry.window = msg.window || slot.window || entry.chunkSize * DEFAULT_WINDOW_CHUNKS;
      entry.sentOffset = entry.ackedOffset = msg.offset || 0;
      entry.epoch += 1;
      if (resumed) entry.resumeCount += 1;
      if (entry.status !== COMPLETE) {
        entry.status = UPLOADING;
        this.view.changed(entry, true);
      }
      this.pump();
    }

    on_rejected(msg) {
      const entry = this.awaiting.get(msg.ref);
      this.awaiting.delete(msg.ref);
      if (!entry) return;
      if (entry.status === CANCELLED) {
        this.view.forget(entry);
      } else if (msg.code === "server_busy") {
        entry.status = QUEUED;
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
        return;
      }
      this.view.complete(entry, msg.sha256 || null);
      this.pump();
    }

    on_error(msg) {
      if (msg.entry === undefined && msg.ref === undefined) {
        // Connection-level: the server closes next; onClose decides whether reconnecting can help.
        this.lastErrorCode = msg.code;
        console.error(`twisted-uploads: ${msg.code}: ${msg.message || message(msg.code)}`);
        return;
      }
      const entry = this.view.entryById(msg.entry) || this.awaiting.get(msg.ref) || this.view.entryByRef(msg.ref);
      if (!entry) return;
      this.awaiting.delete(entry.ref);
      if (entry.status === CANCELLED) {
        this.view.forget(entry);
      } else if (msg.code === "unknown_entry" && UNFINISHED.has(entry.status) &&
                 entry.reannounceCount < MAX_REANNOUNCES) {
        // The server let the entry go (grace period over): the file is still here, so send it again.
        entry.reannounceCount += 1;
        entry.resetToStart();
        entry.status = QUEUED;
      } else if (msg.code === "server_busy" && entry.status === RESUMING) {
        entry.status = QUEUED;
        this.retryLater();
      } else if (!(entry.status === COMPLETE && msg.code === "unknown_entry")) {
        this.view.fail(entry, msg.code, msg.message);
      }
      this.pump();
    }

    on_cancelled(msg) {
      const entry = this.view.entryById(msg.entry) || this.view.entryByRef(msg.ref);
      if (!entry) return;
      this.awaiting.delete(entry.ref);
      this.view.markCancelled(entry);
      this.view.forget(entry);
      this.pump();
    }

    retryLater() {
      if (this.retryTimer) return;
      this.retryTimer = setTimeout(() => { this.retryTimer = null; this.pump(); }, SERVER_BUSY_RETRY_MS);
    }

    /** Start what may start: announces and resumes within max_parallel, then stream every accepted entry. */
    pump() {
      if (this.state !== "open") {
        if (this.view.needsConnection()) this.ensureOpen();
        return;
      }
      let inFlight = this.view.entries.filter((e) => IN_FLIGHT.has(e.status)).length;
      const announcingSlots = new Set(Array.from(this.awaiting.values(), (e) => e.slotName));
      for (const entry of this.view.entries) {
        if (inFlight >= this.maxParallel) break;
        // One announce per slot at a time, so a replaced entry's cancel reaches the server before the next
        // announce is counted against max_entries.
        if (entry.status !== QUEUED || announcingSlots.has(entry.slotName)) continue;
        this.awaiting.set(entry.ref, entry);
        announcingSlots.add(entry.slotName);
        inFlight += 1;
        if (entry.entryId !== null) {
          entry.status = RESUMING;
          this.sendJSON({ type: "resume", entry: entry.entryId });
        } else {
          entry.status = ANNOUNCING;
          this.sendJSON({ type: "announce", ref: entry.ref, slot: entry.slotName, name: entry.file.name,
                          mime: entry.file.type || "", size: entry.size });
        }
        this.view.changed(entry);
      }
      for (const entry of this.view.entries) {
        if (entry.status === UPLOADING) this.stream(entry);
      }
    }

    /**
     * Read and send while the entry's unacknowledged bytes fit its window. Each read takes the free part of the
     * window in one File.slice (at most `window` bytes: the file is never held in memory), cut into frames.
     */
    async stream(entry) {
      if (entry.reading) return;
      const ws = this.ws;
      const epoch = entry.epoch;
      const live = () => entry.status === UPLOADING && entry.epoch === epoch && this.ws === ws &&
        ws !== null && ws.readyState === WebSocket.OPEN;
      entry.reading = true;
      try {
        while (live() && entry.sentOffset < entry.size) {
          const start = entry.sentOffset;
          const unacked = start - entry.ackedOffset;
          let chunks = Math.floor((entry.window - unacked) / entry.chunkSize);
          if (chunks < 1) {
            if (unacked > 0) break; // wait for an ack
            chunks = 1;             // a window smaller than a chunk still moves one chunk at a time
          }
          const end = Math.min(entry.size, start + chunks * entry.chunkSize);
          const block = await entry.file.slice(start, end).arrayBuffer();
          if (!live() || entry.sentOffset !== start) break;
          if (block.byteLength !== end - start) throw new Error("short read");
          for (let offset = 0; offset < block.byteLength; offset += entry.chunkSize) {
            const length = Math.min(entry.chunkSize, block.byteLength - offset);
            const frame = new Uint8Array(FRAME_HEADER_BYTES + length);
            const header = new DataView(frame.buffer);
            header.setUint32(0, entry.entryId);
            header.setBigUint64(4, BigInt(start + offset));
            frame.set(new Uint8Array(block, offset, length), FRAME_HEADER_BYTES);
            ws.send(frame);
          }
          entry.sentOffset = end;
        }
      } catch (error) {
        if (entry.status === UPLOADING && entry.epoch === epoch) {
          this.sendJSON({ type: "cancel", entry: entry.entryId });
          this.view.fail(entry, "size_mismatch",
            `${entry.file.name} could not be read; it may have been changed or moved.`);
        }
      } finally {
        entry.reading = false;
      }
      // A newer `accepted` arrived while a read was pending: stream again from the new offset.
      if (entry.epoch !== epoch && entry.status === UPLOADING) this.stream(entry);
    }

    cancel(entry) {
      if (entry.entryId === null) return false;
      if (this.state !== "open") return false;
      this.sendJSON({ type: "cancel", entry: entry.entryId });
      return true;
    }
  }

  // ------------------------------------------------------------------------------------------------- View

  /** The state behind one page root (data-dj-view): its config, its entries and its connection. */
  class View {
    constructor(id) {
      this.id = id;
      this.config = { url: DEFAULT_WS_PATH, token: "", slots: {} };
      this.configText = null;
      this.entries = [];
      this.connection = new Connection(this);
      this.settleWaiters = [];
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
        this.config = { url: parsed.url || DEFAULT_WS_PATH, token: parsed.token || "", slots };
      } catch (error) {
        console.error("twisted-uploads: data-dj-uploads is not valid JSON", error);
      }
      // A new token (from a re-render) may succeed where the old one failed.
      if (this.connection.state === "failed" && this.needsConnection()) this.connection.ensureOpen();
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

    /** Entries that still take one of the slot's max_entries places. */
    activeEntries(slotName) {
      return this.entries.filter((e) => e.slotName === slotName && e.status !== ERROR && e.status !== CANCELLED);
    }

    needsConnection() {
      return this.entries.some((e) => UNFINISHED.has(e.status) || (e.status === CANCELLED && e.entryId !== null));
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
      if (maxEntries === 1) {
        // A single-file field: a new choice replaces the previous, unconsumed one.
        for (const previous of this.entries.filter((e) => e.slotName === slotName)) this.cancel(previous, true);
      }
      const room = Math.max(0, maxEntries - this.activeEntries(slotName).length);
      const added = [];
      candidates.forEach((file, index) => {
        if (index >= room) {
          this.reject(file, slotName, origin, "too_many_files",
            `${file.name}: ${slotName} takes at most ${maxEntries} file(s).`);
          return;
        }
        const entry = new Entry(this, slotName, file, origin);
        entry.status = slot.auto_upload === false ? PENDING : QUEUED;
        this.entries.push(entry);
        added.push(entry);
      });
      this.render(slotName);
      if (added.some((e) => e.status === QUEUED)) this.connection.pump();
      return added;
    }

    reject(file, slotName, origin, code, text) {
      const error = text || message(code);
      dispatch(this.eventTarget(origin, slotName), "djust:upload:error",
        { file: file.name, error, code, ref: null, uploadName: slotName, size: file.size });
    }

    /** Start held (auto_upload=False) entries; resolves when every entry of this view has finished. */
    uploadAll() {
      let started = false;
      for (const entry of this.entries) {
        if (entry.status === PENDING) {
          entry.status = QUEUED;
          started = true;
          this.changed(entry);
        }
      }
      if (started || this.needsConnection()) this.connection.pump();
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

    complete(entry, sha256) {
      entry.status = COMPLETE;
      entry.ackedOffset = entry.sentOffset = entry.size;
      entry.sha256 = sha256 || entry.sha256;
      this.changed(entry, true);
    }

    fail(entry, code, text) {
      entry.status = ERROR;
      entry.code = code || "storage_failed";
      entry.message = text || message(entry.code);
      this.changed(entry, true);
      dispatch(this.eventTarget(entry.origin, entry.slotName), "djust:upload:error",
        { file: entry.file.name, error: entry.message, code: entry.code, ref: entry.ref,
          uploadName: entry.slotName, size: entry.size });
    }

    markCancelled(entry) {
      if (entry.status === CANCELLED) return;
      entry.status = CANCELLED;
      entry.code = "cancelled";
      entry.message = message("cancelled");
      this.changed(entry, true);
    }

    /** Cancel on the server too; the entry leaves previews and progress at once. */
    cancel(entry, quiet) {
      if (entry.status === CANCELLED) return;
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
        if (!awaitingAnswer && !this.connection.cancel(entry)) this.connection.pump();
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

    /** The view consumed these finished entries (an event round trip): they leave the page. */
    delivered(entries) {
      for (const entry of entries) {
        if (this.entries.includes(entry) && (entry.status === COMPLETE || entry.status === ERROR)) {
          this.forget(entry);
        }
      }
    }

    changed(entry, announce) {
      this.renderEntry(entry);
      if (announce && entry.status !== PENDING) {
        dispatch(this.eventTarget(entry.origin, entry.slotName), "djust:upload:progress",
          { ref: entry.ref, progress: entry.progress, status: entry.publicStatus, uploadName: entry.slotName,
            name: entry.file.name, size: entry.size, sha256: entry.sha256 });
      }
      this.checkSettled();
    }

    eventTarget(origin, slotName) {
      if (origin && origin.isConnected) return origin;
      const root = this.root;
      if (!root) return null;
      return root.querySelector(`[dj-upload="${CSS.escape(slotName)}"]`) || root;
    }

    // -- rendering: containers are reconciled from state, so they survive a swap of the DOM under them --

    containers(kind, slotName) {
      const root = this.root;
      if (!root) return [];
      const name = kind === "preview" ? "dj-upload-preview" : "dj-upload-progress";
      const list = Array.from(root.querySelectorAll(`[${name}="${CSS.escape(slotName)}"]`));
      if (root.getAttribute(name) === slotName) list.unshift(root);
      return list;
    }

    render(slotName) {
      for (const container of this.containers("preview", slotName)) renderPreview(this, container, slotName);
      for (const container of this.containers("progress", slotName)) renderProgress(this, container, slotName);
    }

    renderEntry(entry) {
      // Items appear and disappear with status changes; in-place updates cover progress.
      this.render(entry.slotName);
    }
  }

  function showsPreview(entry) {
    return entry.status !== CANCELLED;
  }

  function showsProgress(entry) {
    return entry.status !== CANCELLED && entry.status !== PENDING;
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
    button.setAttribute("aria-label", `Remove ${entry.file.name}`);
    return button;
  }

  function renderPreview(view, container, slotName) {
    const entries = view.entries.filter((e) => e.slotName === slotName && showsPreview(e));
    reconcile(container, entries, "upload-preview-item", (entry) => {
      const item = element("div", "upload-preview-item");
      item.setAttribute("data-upload-ref", entry.ref);
      if (isImage(entry.file)) {
        if (!entry.previewUrl) entry.previewUrl = URL.createObjectURL(entry.file);
        const image = element("img", "upload-preview-image");
        image.src = entry.previewUrl;
        image.alt = entry.file.name;
        item.append(image);
      }
      item.append(element("span", "upload-preview-name", entry.file.name),
        element("span", "upload-preview-size", formatBytes(entry.size)),
        cancelButton(entry, "upload-preview-remove"));
      return item;
    }, (item, entry) => {
      if (item.getAttribute("data-upload-status") !== entry.status) item.setAttribute("data-upload-status", entry.status);
    });
  }

  function renderProgress(view, container, slotName) {
    const entries = view.entries.filter((e) => e.slotName === slotName && showsProgress(e));
    reconcile(container, entries, "upload-progress-item", (entry) => {
      const item = element("div", "upload-progress-item");
      item.setAttribute("data-upload-ref", entry.ref);
      const track = element("div", "upload-progress-track");
      const bar = element("div", "upload-progress-bar");
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-label", `Upload of ${entry.file.name}`);
      track.append(bar);
      item.append(element("span", "upload-progress-name", entry.file.name), track,
        element("span", "upload-progress-text"), cancelButton(entry, "upload-progress-cancel"));
      return item;
    }, (item, entry) => {
      const progress = entry.progress;
      const bar = item.querySelector(".upload-progress-bar");
      const text = item.querySelector(".upload-progress-text");
      if (item.getAttribute("data-upload-status") !== entry.status) item.setAttribute("data-upload-status", entry.status);
      if (bar.getAttribute("aria-valuenow") !== String(progress)) {
        bar.setAttribute("aria-valuenow", String(progress));
        bar.style.width = `${progress}%`;
      }
      const label = entry.status === ERROR ? entry.message
        : entry.status === PAUSED ? `${progress}% (reconnecting\u2026)` : `${progress}%`;
      if (text.textContent !== label) text.textContent = label;
      if (entry.status === ERROR) bar.setAttribute("aria-valuetext", entry.message);
      else if (bar.hasAttribute("aria-valuetext")) bar.removeAttribute("aria-valuetext");
    });
  }

  // ------------------------------------------------------------------------------------------ page roots

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

  /** Bind everything under the document: idempotent, re-run after every DOM change (swap or other). */
  function scan() {
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

  // ---------------------------------------------------------------------------------- file selection

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

  // -------------------------------------------------------------------------------------- drag and drop

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

  function onDrop(event) {
    const zone = dropZone(event);
    for (const other of document.querySelectorAll(".upload-dragover")) {
      if (other.hasAttribute("dj-upload-drop")) clearDrag(other);
    }
    if (!zone || !event.dataTransfer) return;
    const files = Array.from(event.dataTransfer.files || []);
    if (!files.length && !isFileDrag(event)) return;
    event.preventDefault(); // the browser must not open the file, nor a file input take it
    const view = viewFor(zone);
    if (view && files.length) view.addFiles(attr(zone, "dj-upload-drop"), files, zone);
  }

  function onDragEnd() {
    for (const zone of document.querySelectorAll(`${SELECTOR.drop}.upload-dragover`)) clearDrag(zone);
  }

  // ----------------------------------------------------------------------------------------- clicks

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
      sendClick(clickable);
      return;
    }
    // "Drag photos here or click to browse": a click on the zone's own surface opens its file input.
    const zone = event.target.closest(SELECTOR.drop);
    if (zone && !event.target.closest("input, button, a, label, select, textarea, [dj-upload-preview], [dj-upload-progress]")) {
      const input = zone.querySelector(`input[type="file"][dj-upload="${CSS.escape(attr(zone, "dj-upload-drop"))}"]`);
      if (input) input.click();
    }
  }

  // ------------------------------------------------------------------------------ LiveView events

  function finishedEntries(view) {
    return view.entries.filter((e) => e.status === COMPLETE || e.status === ERROR);
  }

  async function sendEvent(view, form, trigger, eventName) {
    const root = view.root;
    const response = await fetch(global.location.href, {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { "X-DJ-Request": "1", "X-CSRFToken": csrfToken(trigger.closest("form") || root) },
    });
    if (!response.ok) {
      const detail = { event: eventName, status: response.status, view: view.id };
      dispatch(trigger, "djust:event:error", detail);
      console.error(`twisted-uploads: ${eventName} answered HTTP ${response.status}`);
      return false;
    }
    if (response.redirected) {
      // The handler answered with a redirect (return redirect(...)): follow it as a navigation.
      global.location.assign(response.url);
      return true;
    }
    const html = await response.text();
    if (!swap(view, html, eventName)) {
      // The handler answered with some other page: show it as the browser would have after a form post.
      document.open();
      document.write(html);
      document.close();
    }
    return true;
  }

  function swap(view, html, eventName) {
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
  }

  /** Uploads first (held ones start now), then the event: the view always sees finished entries. */
  async function runEvent(trigger, view, buildForm, eventName) {
    if (trigger.hasAttribute("data-dj-busy")) return;
    trigger.setAttribute("data-dj-busy", "");
    trigger.setAttribute("aria-busy", "true");
    try {
      await view.uploadAll();
      const handedOver = finishedEntries(view);
      if (await sendEvent(view, buildForm(), trigger, eventName)) view.delivered(handedOver);
    } catch (error) {
      dispatch(trigger, "djust:event:error", { event: eventName, status: 0, view: view.id, error: String(error) });
      console.error("twisted-uploads: event failed", error);
    } finally {
      trigger.removeAttribute("data-dj-busy");
      trigger.removeAttribute("aria-busy");
    }
  }

  function onSubmit(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("dj-submit")) return;
    const view = viewFor(form);
    if (!view) return; // no page root: let the browser post the form (the no-JavaScript path)
    event.preventDefault();
    const submitter = event.submitter || null;
    const eventName = attr(form, "dj-submit");
    runEvent(form, view, () => {
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
  }

  function sendClick(trigger) {
    const view = viewFor(trigger);
    if (!view) return;
    const eventName = attr(trigger, "dj-click");
    runEvent(trigger, view, () => {
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
  }

  // ------------------------------------------------------------------------------------------ public API

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

  global.djUploads = Object.freeze({
    version: VERSION,
    protocol: 1,
    errorMessages: ERROR_MESSAGES,
    /** Snapshots of the entries this page holds, optionally of one slot. */
    entries(slotName) {
      return allEntries().filter((e) => !slotName || e.slotName === slotName).map((e) => e.snapshot());
    },
    /** Cancel one upload by its ref (also on the server); false when the ref is unknown. */
    cancel: cancelUpload,
    /** Add files to a slot from script, with the same checks as a file input. Returns the new refs. */
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
    /** Connection state of the view's WebSocket (idle, connecting, open, waiting, failed) and socket count. */
    connection(scope) {
      const view = viewOf(scope);
      return view ? { state: view.connection.state, sockets: view.connection.wsCount } : null;
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

  // ------------------------------------------------------------------------------------------------ start

  function start() {
    document.addEventListener("change", onChange);
    document.addEventListener("dragenter", onDragEnter);
    document.addEventListener("dragover", onDragOver);
    document.addEventListener("dragleave", onDragLeave);
    document.addEventListener("drop", onDrop);
    document.addEventListener("dragend", onDragEnd);
    document.addEventListener("click", onClick);
    document.addEventListener("submit", onSubmit);
    global.addEventListener("online", () => { for (const view of views.values()) view.connection.reconnectNow(); });
    new MutationObserver(queueScan).observe(document.documentElement, {
      childList: true, subtree: true, attributes: true,
      attributeFilter: ["data-dj-uploads", "data-dj-view", "dj-upload", "dj-upload-preview", "dj-upload-progress"],
    });
    scan();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(window);
