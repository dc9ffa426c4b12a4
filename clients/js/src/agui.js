// `tether-client/agui`: TetherAgent, an AG-UI agent whose runs and reattaches survive a lost
// connection or a reloaded page. `run()` posts to tether's run route, whose response is the
// thread's session stream; `connect()` reattaches to that stream with a prelude. Both ride on
// TetherEventSource (exact resume with Last-Event-ID, watchdog, backoff, tokens).

import { AbstractAgent, enforceOutgoingInput } from '@ag-ui/client';
import { Observable } from 'rxjs';
import { TetherEventSource } from './index.js';

export { TetherEventSource };

/** Events after which a run's stream has nothing more to say. */
const RUN_ENDS = new Set(['RUN_FINISHED', 'RUN_ERROR']);

const ID_KEY = 'tether-client:agui:lastEventId:';

/** Options handed through to the transport unchanged. */
const TRANSPORT_OPTIONS = [
  'token',
  'tokenInQuery',
  'headers',
  'withCredentials',
  'clientId',
  'heartbeatTimeout',
  'maxRetryMs',
  'healthyAfterMs',
  'onAuthError',
  'fetch',
  'random',
];

/**
 * An AG-UI agent on tether: see README.md ("AG-UI agent").
 */
export class TetherAgent extends AbstractAgent {
  /** @param {import('./agui.js').TetherAgentConfig} [config] */
  constructor(config = {}) {
    super(config);
    this._config = config;
    const base = new URL(String(config.url ?? '/'), globalThis.location?.href).href;
    /** Where tether's routes live (`/api/agui/run`, `/api/sse/session/{threadId}`). */
    this.url = base.endsWith('/') ? base : base + '/';
    /** Whether `connect()` stays attached after a run ends, to see the thread's next runs. */
    this.follow = Boolean(config.follow);
    /** What the connection is doing now: see {@link TetherAgent#onConnection}. */
    this.connection = { state: 'idle' };
    this._storage = config.storage === undefined ? sessionStorageOrNull() : config.storage;
    this._ids = new Map();
    if (config.lastEventId) this._ids.set(this.threadId, config.lastEventId);
    this._onConnection = config.onConnection ?? null;
    this._source = null;
    // Set when a stream's history was lost after it had started: the observable that saw
    // the start ends, and a fresh connect() begins from the prelude.
    this._restart = false;
  }

  /** The last event id seen on this agent's thread (kept in `storage`), or `null`. */
  get lastEventId() {
    return this._lastIdFor(this.threadId);
  }

  /** Advertises what tether adds: streams resume after a lost connection. */
  async getCapabilities() {
    return { transport: { streaming: true, resumable: true } };
  }

  /** `POST /api/agui/run`: the run's events; a cut connection resumes inside the same run. */
  run(input) {
    return this._stream('run', input);
  }

  /**
   * `GET /api/sse/session/{threadId}` with `prelude=always` on the first request: the thread's
   * state so far, then its run in progress (or, with `follow`, every later run too).
   */
  connect(input) {
    return this._stream('connect', input);
  }

  /** Runs the agent; if the run's history was lost mid-way, continues through a reattach. */
  async runAgent(parameters, subscriber) {
    const before = new Set(this.messages.map((m) => m.id));
    this._restart = false;
    const first = await super.runAgent(parameters, subscriber);
    if (!this._restart) return first;
    const rest = await this.connectAgent(undefined, subscriber);
    return { result: rest.result ?? first.result, newMessages: this._newSince(before) };
  }

  /**
   * Reattaches to the thread. A `tether.resync` after the stream had started ends that
   * observable and starts a fresh one from the prelude, so the client's checks see one valid
   * stream each time; the call resolves when the last of them ends.
   */
  async connectAgent(parameters, subscriber) {
    const before = new Set(this.messages.map((m) => m.id));
    let result;
    for (;;) {
      this._restart = false;
      // The prelude announces every approval still pending again, so a reattach is not an
      // answer the client owes them (AbstractAgent would refuse to start otherwise).
      this.pendingInterrupts = [];
      const r = await super.connectAgent(parameters, subscriber);
      result = r.result ?? result;
      if (!this._restart) break;
    }
    return { result, newMessages: this._newSince(before) };
  }

  /** Closes the stream in progress; the observable completes. */
  abortRun() {
    this._source?.close();
    super.abortRun();
  }

  clone() {
    const copy = super.clone();
    for (const k of ['_config', 'url', 'follow', '_storage', '_onConnection']) copy[k] = this[k];
    copy._ids = new Map(this._ids);
    copy._source = null;
    copy._restart = false;
    copy.connection = { state: 'idle' };
    return copy;
  }

  // ---- one stream -------------------------------------------------------------------------

  _stream(kind, input) {
    return new Observable((subscriber) => {
      const thread = input.threadId;
      const session = `${this.url}api/sse/session/${encodeURIComponent(thread)}`;
      const firstRequest =
        kind === 'run'
          ? {
              url: `${this.url}api/agui/run`,
              method: 'POST',
              body: JSON.stringify(enforceOutgoingInput(input)),
              headers: { 'Content-Type': 'application/json' },
            }
          : { url: `${session}?prelude=always` };
      const options = { firstRequest };
      for (const k of TRANSPORT_OPTIONS) if (this._config[k] !== undefined) options[k] = this._config[k];
      // A run resumes, if cut before its first event, after the thread's last known event:
      // that is exactly where the run's own events begin.
      const seed = this._lastIdFor(thread);
      if (seed) options.lastEventId = seed;

      const es = new TetherEventSource(session, options);
      this._source = es;
      this._sourceThread = thread;
      let responses = 0;
      let status;
      let done = false;
      // After a reconnect, frames without an id of their own can only be a prelude, which
      // tether sends there only with a resync: they wait until an id proves the resume exact.
      let holding = null;

      const remember = () => {
        if (es.lastEventId) this._rememberId(thread, es.lastEventId);
      };
      const finish = (error, reason = error ? 'error' : 'ended') => {
        if (done) return;
        done = true;
        remember();
        es.close();
        if (this._source === es) this._source = null;
        if (!this._restart) this._state({ state: 'stopped', reason });
        if (error) subscriber.error(error);
        else subscriber.complete();
      };
      const emit = (event) => {
        subscriber.next(event);
        if (RUN_ENDS.has(event.type) && (kind === 'run' || !this.follow)) finish();
      };

      es.addEventListener('open', () => {
        responses++;
        holding = responses > 1 ? { from: es.lastEventId, frames: [] } : null;
        this._state({ state: 'connected', responses });
      });
      es.addEventListener('message', (e) => {
        if (done) return;
        let event;
        try {
          event = JSON.parse(e.data);
        } catch {
          finish(new Error(`tether-client/agui: a data line is not JSON: ${e.data.slice(0, 80)}`));
          return;
        }
        if (holding) {
          if (e.lastEventId === holding.from) {
            holding.frames.push(event);
            return;
          }
          const held = holding.frames;
          holding = null;
          for (const h of held) if (!done) emit(h);
        }
        if (done) return;
        emit(event);
        remember();
      });
      es.addEventListener('resync', (e) => {
        if (done) return;
        this._state({ state: 'resynced', reason: e.reason, resumeFrom: e.resumeFrom });
        // A connect's first response is a prelude anyway: the resync sits inside it.
        if (kind === 'connect' && responses <= 1) return;
        this._restart = true;
        holding = null;
        finish();
      });
      es.addEventListener('error', (e) => {
        if (e.status) status = e.status;
      });
      es.addEventListener('reconnecting', (e) => {
        if (done) return;
        remember();
        if (kind === 'run' && responses === 0) {
          // The run never started (or nobody can say it did): posting again could start it
          // twice, so the caller decides.
          finish(new Error(`tether-client/agui: POST /api/agui/run failed (${status ?? e.cause})`));
          return;
        }
        this._state({ state: 'reconnecting', attempt: e.attempt, delay: e.delay, cause: e.cause });
      });
      es.addEventListener('close', (e) => {
        if (done) return;
        if (e.reason === 'superseded') {
          finish(null, 'superseded'); // another tab or a later request took the thread over
        } else if (e.reason === 'closed') {
          finish();
        } else {
          finish(new Error(`tether-client/agui: the stream ended (${e.reason}${status ? `, HTTP ${status}` : ''})`));
        }
      });

      return () => {
        if (!done) {
          done = true;
          remember();
          es.close();
          if (this._source === es) this._source = null;
          this._state({ state: 'stopped', reason: 'detached' });
        }
      };
    });
  }

  // ---- bookkeeping ------------------------------------------------------------------------

  _state(connection) {
    this.connection = connection;
    if (typeof this._onConnection === 'function') this._onConnection(connection);
  }

  _lastIdFor(thread) {
    // A stream in progress knows best: id-only frames move its id without an event.
    if (this._source && this._sourceThread === thread && this._source.lastEventId) {
      return this._source.lastEventId;
    }
    if (this._ids.has(thread)) return this._ids.get(thread);
    try {
      return this._storage?.getItem(ID_KEY + thread) || null;
    } catch {
      return null; // storage can be blocked (sandboxed frames, privacy settings)
    }
  }

  _rememberId(thread, id) {
    this._ids.set(thread, id);
    try {
      this._storage?.setItem(ID_KEY + thread, id);
    } catch {
      // kept in memory then
    }
  }

  _newSince(before) {
    return structuredClone(this.messages.filter((m) => !before.has(m.id)));
  }
}

function sessionStorageOrNull() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}
