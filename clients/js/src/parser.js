// An event-stream parser that follows the WHATWG HTML rules ("Interpreting an event
// stream") to the letter, fed with chunks cut anywhere.
//
// The rule that matters most for resuming: the last event ID is committed only when an event
// is dispatched (at the blank line), never when the `id:` line is read, so a connection cut in
// the middle of a frame resumes before that frame rather than after it. A frame that carries
// an id and no data still commits its id (tether sends such frames after a resync).

/**
 * Parses a text/event-stream body.
 *
 * Callbacks: `onEvent({ type, data, lastEventId })` for each dispatched event,
 * `onLastEventId(id)` when a dispatch changes the last event ID (before its event, if any),
 * `onRetry(ms)` for a valid `retry:` field, `onComment(text)` for a comment line.
 */
export class SseParser {
  /**
   * @param {object} [options]
   * @param {string} [options.lastEventId] the last event ID the stream starts from
   * @param {(event: {type: string, data: string, lastEventId: string}) => void} [options.onEvent]
   * @param {(id: string) => void} [options.onLastEventId]
   * @param {(ms: number) => void} [options.onRetry]
   * @param {(text: string) => void} [options.onComment]
   */
  constructor(options = {}) {
    this.lastEventId = options.lastEventId ?? '';
    this._onEvent = options.onEvent ?? noop;
    this._onLastEventId = options.onLastEventId ?? noop;
    this._onRetry = options.onRetry ?? noop;
    this._onComment = options.onComment ?? noop;
    // `ignoreBOM: true` keeps a BOM in the text, so that bytes and strings share the one
    // place that strips it (only at the very start of the stream).
    this._decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    this._started = false;
    this._afterCR = false;
    this._lineEnd = /\r\n|\r|\n/g;
    this._pending = '';
    this._idBuffer = this.lastEventId;
    this._data = '';
    this._hasData = false;
    this._eventType = '';
  }

  /**
   * Feeds the next chunk of the stream: bytes (decoded as UTF-8, multi-byte sequences may be
   * split between chunks) or text.
   * @param {Uint8Array | string} chunk
   */
  feed(chunk) {
    const text = typeof chunk === 'string' ? chunk : this._decoder.decode(chunk, { stream: true });
    this._text(text);
  }

  /**
   * Ends the stream. An incomplete event (no blank line yet) is discarded, as the rules say,
   * and so is its id.
   */
  end() {
    this._text(this._decoder.decode());
    this._pending = '';
    this._data = '';
    this._hasData = false;
    this._eventType = '';
    this._idBuffer = this.lastEventId;
  }

  _text(text) {
    if (text.length === 0) return;
    if (!this._started) {
      this._started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.length === 0) return;
    }
    // A CR at the end of the previous chunk ended a line; an LF right after it belongs to it.
    if (this._afterCR) {
      this._afterCR = false;
      if (text.charCodeAt(0) === 0x0a) text = text.slice(1);
    }
    const buf = this._pending + text;
    const lineEnd = this._lineEnd;
    let start = 0;
    // The pending part holds no line end: search only the new text.
    let from = this._pending.length;
    for (;;) {
      lineEnd.lastIndex = from;
      const m = lineEnd.exec(buf);
      if (m === null) break;
      if (m[0] === '\r' && m.index + 1 === buf.length) this._afterCR = true;
      const line = buf.slice(start, m.index);
      start = m.index + m[0].length;
      from = start;
      this._line(line);
    }
    this._pending = start === 0 ? buf : buf.slice(start);
  }

  _line(line) {
    if (line.length === 0) {
      this._dispatch();
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      this._onComment(line.charCodeAt(1) === 0x20 ? line.slice(2) : line.slice(1));
      return;
    }
    let field;
    let value;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
    }
    switch (field) {
      case 'event':
        this._eventType = value;
        break;
      case 'data':
        this._data = this._hasData ? this._data + '\n' + value : value;
        this._hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this._idBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this._onRetry(Number.parseInt(value, 10));
        break;
      default:
        break;
    }
  }

  _dispatch() {
    if (this._idBuffer !== this.lastEventId) {
      this.lastEventId = this._idBuffer;
      this._onLastEventId(this.lastEventId);
    }
    if (!this._hasData) {
      this._eventType = '';
      return;
    }
    const event = {
      type: this._eventType || 'message',
      data: this._data,
      lastEventId: this.lastEventId,
    };
    this._data = '';
    this._hasData = false;
    this._eventType = '';
    this._onEvent(event);
  }
}

function noop() {}
