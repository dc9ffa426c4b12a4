// TetherEventSource: an EventSource over fetch that resumes exactly, understands tether's
// in-band signals, backs off with jitter and notices a silent connection.

import { SseParser } from './parser.js';

export { SseParser };

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

const DEFAULTS = Object.freeze({
  heartbeatTimeout: 45_000,
  maxRetryMs: 30_000,
  minRetryMs: 500,
  healthyAfterMs: 10_000,
  retryMs: 3_000,
});

/** Statuses after which reconnecting cannot help. */
const FATAL = new Set([400, 403, 404, 409, 410]);

const CLIENT_ID_KEY = 'tether-client:clientId';

/**
 * An EventSource-compatible stream over `fetch` that never loses an event: see README.md.
 */
export class TetherEventSource extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSED = CLOSED;

  /**
   * @param {string | URL} url
   * @param {import('./index.js').TetherEventSourceOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    const base = globalThis.location?.href;
    this.url = new URL(String(url), base).href;
    this._origin = new URL(this.url).origin;
    this.withCredentials = Boolean(options.withCredentials);
    this.clientId = resolveClientId(options.clientId);
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;

    this._options = options;
    this._fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this._heartbeatTimeout = options.heartbeatTimeout ?? DEFAULTS.heartbeatTimeout;
    this._maxRetryMs = Math.max(options.maxRetryMs ?? DEFAULTS.maxRetryMs, DEFAULTS.minRetryMs);
    this._healthyAfterMs = options.healthyAfterMs ?? DEFAULTS.healthyAfterMs;
    this._random = options.random ?? Math.random;

    this._readyState = CONNECTING;
    this._closed = false;
    this._lastEventId = options.lastEventId ?? '';
    this._retryMs = DEFAULTS.retryMs;
    this._attempt = 0; // reconnects since the last stream that stayed healthy
    this._gen = 0; // bumped whenever the current request is given up; stale callbacks check it
    this._controller = null;
    this._reconnectTimer = null;
    this._watchdogTimer = null;
    this._healthyTimer = null;
    this._lastByteAt = 0;
    this._authRetried = false;
    this._drainMs = null;
    this._waitingForOnline = false;
    this._suspended = false;
    this._requests = 0; // requests made; the first may be `firstRequest`

    for (const type of ['open', 'message', 'error']) {
      this.addEventListener(type, (event) => {
        const handler = this['on' + type];
        if (typeof handler === 'function') handler.call(this, event);
      });
    }

    this._lifecycle = installLifecycle(this);
    if (options.signal) {
      if (options.signal.aborted) {
        queueMicrotask(() => this.close());
      } else {
        options.signal.addEventListener('abort', () => this.close(), { once: true });
      }
    }
    queueMicrotask(() => this._connect());
  }

  get CONNECTING() {
    return CONNECTING;
  }
  get OPEN() {
    return OPEN;
  }
  get CLOSED() {
    return CLOSED;
  }

  /** 0 connecting (also while waiting to reconnect), 1 open, 2 closed for good. */
  get readyState() {
    return this._readyState;
  }

  /** The id of the last event dispatched (or id-only frame); sent as `Last-Event-ID`. */
  get lastEventId() {
    return this._lastEventId;
  }

  /** Closes the stream for good: aborts the request and cancels every timer. */
  close() {
    this._stop('closed');
  }

  // ---- one attempt ------------------------------------------------------------------------

  async _connect() {
    if (this._closed) return;
    this._clearTimer('_reconnectTimer');
    this._abort();
    const gen = ++this._gen;
    const controller = new AbortController();
    this._controller = controller;
    this._readyState = CONNECTING;
    this._touch(gen);

    // The first request may differ (another URL, a POST with a body): an AG-UI run starts
    // with a POST whose response is the session's stream, and later attempts resume it.
    const first = this._options.firstRequest && this._requests === 0 ? this._options.firstRequest : null;
    this._requests++;
    let res;
    try {
      const url = await this._requestUrl(first?.url);
      const headers = await this._requestHeaders(first?.headers);
      if (gen !== this._gen) return;
      res = await this._fetch(url, {
        method: first?.method ?? 'GET',
        ...(first?.body !== undefined ? { body: first.body } : {}),
        headers,
        credentials: this.withCredentials ? 'include' : 'same-origin',
        cache: 'no-store',
        signal: controller.signal,
      });
    } catch (error) {
      if (gen !== this._gen) return;
      this._retry({ cause: 'network', error });
      return;
    }
    if (gen !== this._gen) {
      discard(res);
      return;
    }
    this._touch(gen);

    const status = res.status;
    if (status === 204) {
      discard(res);
      this._fail(status, 'stopped');
      return;
    }
    if (status === 401) {
      discard(res);
      this._authError(gen, res);
      return;
    }
    if (status !== 200) {
      discard(res);
      if (status === 408 || status === 429 || status >= 500) {
        this._retry({ cause: 'status', status, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) });
      } else {
        this._fail(status, 'fatal');
      }
      return;
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'text/event-stream' || !res.body) {
      discard(res);
      this._fail(status, 'fatal', 'the response is not text/event-stream');
      return;
    }

    this._readyState = OPEN;
    this._authRetried = false;
    this._drainMs = null;
    this._healthyTimer = setTimeout(() => {
      this._healthyTimer = null;
      if (gen === this._gen) this._attempt = 0;
    }, this._healthyAfterMs);
    this.dispatchEvent(new Event('open'));
    if (gen !== this._gen) return;

    const parser = new SseParser({
      lastEventId: this._lastEventId,
      onLastEventId: (id) => {
        if (gen === this._gen) this._lastEventId = id;
      },
      onRetry: (ms) => {
        if (gen === this._gen) this._retryMs = ms;
      },
      onComment: (text) => {
        if (gen === this._gen) this._comment(text);
      },
      onEvent: (event) => {
        if (gen === this._gen) this._event(event);
      },
    });

    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (gen !== this._gen) return;
        if (done) break;
        this._touch(gen);
        parser.feed(value);
        if (gen !== this._gen) {
          reader.cancel().catch(noop);
          return;
        }
      }
    } catch (error) {
      if (gen !== this._gen) return;
      this._retry({ cause: 'network', error });
      return;
    }
    parser.end();
    this._retry({ cause: this._drainMs === null ? 'closed' : 'drain', clean: true });
  }

  async _requestUrl(override) {
    const url = new URL(override ?? this.url, this.url);
    if (this.clientId) url.searchParams.set('clientId', this.clientId);
    if (this._options.tokenInQuery) {
      const token = await this._token();
      if (token) url.searchParams.set('token', token);
    }
    return url.href;
  }

  async _requestHeaders(firstHeaders) {
    const h = this._options.headers;
    const extra = typeof h === 'function' ? await h() : h;
    const headers = new Headers(extra ?? undefined);
    for (const [k, v] of new Headers(firstHeaders ?? undefined)) headers.set(k, v);
    headers.set('Accept', 'text/event-stream');
    if (this._lastEventId) headers.set('Last-Event-ID', this._lastEventId);
    if (!this._options.tokenInQuery) {
      const token = await this._token();
      if (token) headers.set('Authorization', `Bearer ${token}`);
    }
    return headers;
  }

  async _token() {
    const t = this._options.token;
    return typeof t === 'function' ? await t() : t;
  }

  // ---- what a stream says -----------------------------------------------------------------

  _event({ type, data, lastEventId }) {
    if (type === 'message' && data.includes('"tether.')) {
      const signal = parseSignal(data);
      if (signal && this._signal(signal.name, signal.value ?? {})) return;
    }
    this.dispatchEvent(new MessageEvent(type, { data, lastEventId, origin: this._origin }));
  }

  _comment(text) {
    // Terminal signals of AG-UI sessions between runs come as comments:
    // `: tether.superseded {}`, `: tether.drain {"retryMs":N}`.
    if (!text.startsWith('tether.')) return;
    const space = text.indexOf(' ');
    const name = space === -1 ? text : text.slice(0, space);
    let value = {};
    if (space !== -1) {
      try {
        value = JSON.parse(text.slice(space + 1)) ?? {};
      } catch {
        value = {};
      }
    }
    this._signal(name, value);
  }

  /** Handles a tether control signal; returns whether it was one. */
  _signal(name, value) {
    switch (name) {
      case 'tether.resync':
        this.dispatchEvent(
          eventWith('resync', {
            reason: value.reason,
            lastEventId: value.lastEventId ?? null,
            resumeFrom: value.resumeFrom,
            skipped: value.skipped,
          }),
        );
        return true;
      case 'tether.superseded':
        this.dispatchEvent(new Event('superseded'));
        this._stop('superseded');
        return true;
      case 'tether.drain':
        this._drainMs = Number.isFinite(value.retryMs) ? value.retryMs : this._retryMs;
        return true;
      default:
        return false;
    }
  }

  // ---- endings ----------------------------------------------------------------------------

  async _authError(gen, res) {
    const onAuthError = this._options.onAuthError;
    this._abort();
    this.dispatchEvent(eventWith('error', { status: 401 }));
    if (gen !== this._gen) return;
    if (typeof onAuthError !== 'function' || this._authRetried) {
      this._fail(401, 'fatal', null, false);
      return;
    }
    this._authRetried = true;
    try {
      await onAuthError({ status: 401, response: res });
    } catch (error) {
      if (gen === this._gen) this._fail(401, 'fatal', error, false);
      return;
    }
    if (gen !== this._gen) return;
    this._schedule(0, 'auth');
  }

  /** The attempt ended; come back later. */
  _retry({ cause, status, error, retryAfterMs, clean = false }) {
    if (this._closed) return;
    this._abort();
    this._gen++;
    const attempt = ++this._attempt;
    let delay;
    if (clean) {
      const hint = cause === 'drain' ? (this._drainMs ?? this._retryMs) : this._retryMs;
      // After a healthy stream the server's hint is used as is; a stream that ends soon
      // after it opened also backs off, so a server that accepts and closes at once cannot
      // make the client spin.
      delay = attempt === 1 ? hint : Math.max(hint, this._backoff(attempt));
    } else {
      delay = Math.max(this._backoff(attempt), retryAfterMs ?? 0);
    }
    this._readyState = CONNECTING;
    this.dispatchEvent(eventWith('error', { status, cause, error }));
    if (this._closed) return;
    this._schedule(delay, cause, attempt);
  }

  _schedule(delay, cause, attempt = this._attempt) {
    if (this._closed) return;
    this._readyState = CONNECTING;
    this.dispatchEvent(eventWith('reconnecting', { attempt, delay, cause }));
    if (this._closed) return;
    if (globalThis.navigator?.onLine === false && cause !== 'online') {
      this._waitingForOnline = true;
      return;
    }
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      this._connect();
    }, delay);
  }

  /** Full jitter between the minimum and a cap that doubles with each attempt. */
  _backoff(attempt) {
    const cap = Math.min(this._maxRetryMs, DEFAULTS.minRetryMs * 2 ** Math.min(attempt, 30));
    return Math.max(DEFAULTS.minRetryMs, Math.round(this._random() * cap));
  }

  /** Ends for good after an answer reconnecting cannot fix. */
  _fail(status, reason, error = null, dispatchError = true) {
    if (dispatchError) {
      this._readyState = CLOSED;
      this.dispatchEvent(eventWith('error', { status, error: error ?? undefined }));
    }
    this._stop(reason);
  }

  _stop(reason) {
    if (this._closed) return;
    this._closed = true;
    this._gen = -1;
    this._readyState = CLOSED;
    this._abort();
    this._clearTimer('_reconnectTimer');
    this._clearTimer('_watchdogTimer');
    this._clearTimer('_healthyTimer');
    this._waitingForOnline = false;
    this._lifecycle?.remove();
    this._lifecycle = null;
    this.dispatchEvent(eventWith('close', { reason }));
  }

  _abort() {
    this._clearTimer('_healthyTimer');
    this._clearTimer('_watchdogTimer');
    if (this._controller) {
      this._controller.abort();
      this._controller = null;
    }
  }

  _clearTimer(name) {
    if (this[name] !== null) {
      clearTimeout(this[name]);
      this[name] = null;
    }
  }

  // ---- watchdog ---------------------------------------------------------------------------

  /** Any byte (comments included) proves the connection alive: restart the watchdog. */
  _touch(gen) {
    this._lastByteAt = Date.now();
    const timeout = this._heartbeatTimeout;
    if (!(timeout > 0 && Number.isFinite(timeout))) return;
    this._clearTimer('_watchdogTimer');
    this._watchdogTimer = setTimeout(() => {
      this._watchdogTimer = null;
      if (gen === this._gen) this._retry({ cause: 'watchdog' });
    }, timeout);
  }

  /** Timers of hidden pages may be throttled: check the watchdog when the page shows again. */
  _checkWatchdog() {
    const timeout = this._heartbeatTimeout;
    if (!this._closed && this._controller && timeout > 0 && Date.now() - this._lastByteAt > timeout) {
      this._retry({ cause: 'watchdog' });
    }
  }

  // ---- page lifecycle ---------------------------------------------------------------------

  _online() {
    if (this._closed || this._suspended) return;
    if (this._waitingForOnline || this._reconnectTimer !== null) {
      this._waitingForOnline = false;
      this._clearTimer('_reconnectTimer');
      this._schedule(0, 'online');
    }
  }

  _offline() {
    if (this._closed || this._reconnectTimer === null) return;
    this._clearTimer('_reconnectTimer');
    this._waitingForOnline = true;
  }

  _pagehide(persisted) {
    // A page entering the back/forward cache must not hold a connection open.
    if (!persisted || this._closed) return;
    this._suspended = true;
    this._abort();
    this._gen++;
    this._clearTimer('_reconnectTimer');
    this._readyState = CONNECTING;
  }

  _pageshow(persisted) {
    if (!persisted || !this._suspended || this._closed) return;
    this._suspended = false;
    this._connect();
  }
}

function installLifecycle(source) {
  const target = globalThis.window ?? globalThis;
  if (typeof target.addEventListener !== 'function' || typeof globalThis.document === 'undefined') {
    return null;
  }
  const doc = globalThis.document;
  const handlers = {
    online: () => source._online(),
    offline: () => source._offline(),
    pagehide: (e) => source._pagehide(e.persisted),
    pageshow: (e) => source._pageshow(e.persisted),
  };
  const visibility = () => {
    if (doc.visibilityState === 'visible') source._checkWatchdog();
  };
  for (const [type, fn] of Object.entries(handlers)) target.addEventListener(type, fn);
  doc.addEventListener('visibilitychange', visibility);
  return {
    remove() {
      for (const [type, fn] of Object.entries(handlers)) target.removeEventListener(type, fn);
      doc.removeEventListener('visibilitychange', visibility);
    },
  };
}

function resolveClientId(option) {
  if (option === null || option === false) return null;
  if (typeof option === 'string') return option;
  let storage = null;
  try {
    storage = globalThis.sessionStorage ?? null;
  } catch {
    storage = null; // storage can be blocked (sandboxed frames, privacy settings)
  }
  try {
    const stored = storage?.getItem(CLIENT_ID_KEY);
    if (stored) return stored;
  } catch {
    // fall through to a fresh id
  }
  const id = randomId();
  try {
    storage?.setItem(CLIENT_ID_KEY, id);
  } catch {
    // an id per instance then
  }
  return id;
}

function randomId() {
  const bytes = new Uint8Array(12);
  if (globalThis.crypto?.getRandomValues) {
    globalThis.crypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function parseSignal(data) {
  let v;
  try {
    v = JSON.parse(data);
  } catch {
    return null;
  }
  if (v && v.type === 'CUSTOM' && typeof v.name === 'string' && v.name.startsWith('tether.')) {
    return { name: v.name, value: v.value };
  }
  return null;
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value) {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number.parseInt(v, 10) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function eventWith(type, props) {
  const event = new Event(type);
  for (const [k, v] of Object.entries(props)) {
    Object.defineProperty(event, k, { value: v, enumerable: true });
  }
  return event;
}

function discard(res) {
  res?.body?.cancel().catch(noop);
}

function noop() {}
