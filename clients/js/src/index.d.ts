/** A value, or a function that returns it (possibly as a promise); called on every attempt. */
export type Provider<T> = T | (() => T | Promise<T>);

/** Options of {@link TetherEventSource}. */
export interface TetherEventSourceOptions {
  /**
   * Bearer token: a string, or a function returning one (or a promise of one), called on every
   * attempt so a refreshed token is used. Sent as `Authorization: Bearer <token>`, or as the
   * `token` query parameter with `tokenInQuery`. Default: none.
   */
  token?: Provider<string | null | undefined>;
  /** Send the token as the `token` query parameter instead of a header. Default `false`. */
  tokenInQuery?: boolean;
  /**
   * Extra request headers: a value, or a (possibly async) function called on every attempt.
   * `Accept`, `Last-Event-ID` and `Authorization` are set by the client. Default: none.
   */
  headers?: Provider<HeadersInit | null | undefined>;
  /** Send cookies cross-origin (`credentials: 'include'`). Default `false` (`same-origin`). */
  withCredentials?: boolean;
  /**
   * The id to resume after on the first connect. Kept until a newer one arrives, also across
   * reconnects that saw no new id. Default: none (the stream starts at the oldest event kept).
   */
  lastEventId?: string;
  /**
   * The instance's name, sent as the `clientId` query parameter so the server can tell a
   * second tab from a reload. Default: a random id kept in `sessionStorage` (one per tab);
   * without `sessionStorage`, a random id per instance. `null` or `false` sends none.
   */
  clientId?: string | null | false;
  /**
   * Milliseconds without a single byte (heartbeat comments count) after which the connection
   * is given up and a new one is made. Default 45000 (3 × the server's 15 s keepalive);
   * `0` turns the watchdog off.
   */
  heartbeatTimeout?: number;
  /** Largest reconnect delay after consecutive failures, in ms. Default 30000. */
  maxRetryMs?: number;
  /**
   * How long a stream must stay up before the backoff starts again from its minimum, in ms.
   * Default 10000.
   */
  healthyAfterMs?: number;
  /**
   * Called on a 401; when it resolves, the client retries once at once (e.g. with a refreshed
   * token). Without it, or on a second 401 in a row, the stream closes with reason `fatal`.
   */
  onAuthError?: (info: { status: 401; response: Response }) => void | Promise<void>;
  /** The `fetch` to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Aborting it closes the stream, as `close()` does. */
  signal?: AbortSignal;
  /** Source of randomness for the backoff's jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /**
   * How the instance's first request differs from the `GET` of later attempts: another URL
   * (resolved against the stream's), another method with a body, extra headers. For a stream
   * that starts with a `POST` whose response is the stream (an AG-UI run) or with query
   * parameters only the first request carries (`prelude=always`). Default: none.
   */
  firstRequest?: FirstRequest;
}

/** See {@link TetherEventSourceOptions.firstRequest}. */
export interface FirstRequest {
  url?: string | URL;
  method?: string;
  body?: BodyInit;
  headers?: HeadersInit;
}

/** Why an attempt ended and another is coming. */
export type ReconnectCause =
  | 'network'
  | 'closed'
  | 'drain'
  | 'status'
  | 'watchdog'
  | 'auth'
  | 'online';

/** Why a stream stopped for good. */
export type CloseReason = 'closed' | 'superseded' | 'stopped' | 'fatal';

/** `reconnecting`: a new attempt starts after `delay` ms. */
export interface ReconnectingEvent extends Event {
  readonly type: 'reconnecting';
  /** Reconnects since the last stream that stayed healthy, from 1. */
  readonly attempt: number;
  /** Milliseconds until the attempt. */
  readonly delay: number;
  readonly cause: ReconnectCause;
}

/**
 * `resync`: history was lost (`reason`); the application drops its local state, and the
 * snapshot (if the session has one) and the live events follow.
 */
export interface ResyncEvent extends Event {
  readonly type: 'resync';
  readonly reason: 'evicted' | 'epoch' | 'ahead' | 'unknown';
  /** The id the client had sent, or `null`. */
  readonly lastEventId: string | null;
  /** The id of the first event that follows. */
  readonly resumeFrom: string;
  /** How many events were lost, when the server knows. */
  readonly skipped?: number;
}

/**
 * `error`: an attempt failed (`readyState` is `CONNECTING` and a `reconnecting` event
 * follows) or the stream stopped (`readyState` is `CLOSED` and a `close` event follows).
 */
export interface TetherErrorEvent extends Event {
  readonly type: 'error';
  /** The HTTP status, when there was a response. */
  readonly status?: number;
  readonly cause?: ReconnectCause;
  readonly error?: unknown;
}

/** `close`: the stream stopped for good. */
export interface CloseEvent extends Event {
  readonly type: 'close';
  readonly reason: CloseReason;
}

export interface TetherEventSourceEventMap {
  open: Event;
  message: MessageEvent<string>;
  error: TetherErrorEvent;
  reconnecting: ReconnectingEvent;
  resync: ResyncEvent;
  superseded: Event;
  close: CloseEvent;
}

/**
 * An EventSource over `fetch` that resumes exactly after the last event it dispatched,
 * turns tether's signals into events, reconnects with backoff and jitter, and gives up a
 * connection that stays silent past `heartbeatTimeout`.
 */
export declare class TetherEventSource extends EventTarget {
  constructor(url: string | URL, options?: TetherEventSourceOptions);

  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSED: 2;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSED: 2;

  /** The absolute URL. */
  readonly url: string;
  readonly withCredentials: boolean;
  /** The `clientId` sent, or `null`. */
  readonly clientId: string | null;
  /** 0 connecting (also while waiting to reconnect), 1 open, 2 closed for good. */
  readonly readyState: 0 | 1 | 2;
  /** The last committed id: of the last event dispatched, or of an id-only frame. */
  readonly lastEventId: string;

  onopen: ((this: TetherEventSource, ev: Event) => unknown) | null;
  onmessage: ((this: TetherEventSource, ev: MessageEvent<string>) => unknown) | null;
  onerror: ((this: TetherEventSource, ev: TetherErrorEvent) => unknown) | null;

  /** Closes for good: aborts the request, cancels every timer, dispatches `close`. */
  close(): void;

  addEventListener<K extends keyof TetherEventSourceEventMap>(
    type: K,
    listener: (this: TetherEventSource, ev: TetherEventSourceEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: (this: TetherEventSource, ev: MessageEvent<string>) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof TetherEventSourceEventMap>(
    type: K,
    listener: (this: TetherEventSource, ev: TetherEventSourceEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** An event the parser dispatched. */
export interface ParsedEvent {
  /** The `event:` field, or `"message"`. */
  type: string;
  data: string;
  lastEventId: string;
}

export interface SseParserOptions {
  /** The last event ID the stream starts from. Default `""`. */
  lastEventId?: string;
  onEvent?: (event: ParsedEvent) => void;
  /** A dispatch changed the last event ID (called before that dispatch's event, if any). */
  onLastEventId?: (id: string) => void;
  onRetry?: (ms: number) => void;
  /** A comment line, without the colon and one leading space. */
  onComment?: (text: string) => void;
}

/**
 * A text/event-stream parser that follows the WHATWG rules: LF, CR and CRLF line ends, a
 * leading BOM, `retry` digits only, ids with NUL ignored, ids committed at dispatch.
 */
export declare class SseParser {
  constructor(options?: SseParserOptions);
  /** The last committed event ID. */
  readonly lastEventId: string;
  /** Feeds bytes (UTF-8, split anywhere) or text. */
  feed(chunk: Uint8Array | string): void;
  /** Ends the stream; an incomplete event is discarded. */
  end(): void;
}

/** A `Retry-After` header value in milliseconds (delta-seconds or an HTTP date). */
export declare function parseRetryAfter(value: string | null | undefined): number | undefined;
