// A TCP proxy on 127.0.0.1 between a client and a server that can cut connections, hold
// bytes, slice the response into small writes, and cut right after a byte pattern.

import net from 'node:net';

/**
 * @param {number} targetPort
 * @returns {Promise<Proxy>}
 */
export async function startProxy(targetPort) {
  const proxy = new Proxy(targetPort);
  await new Promise((resolve, reject) => {
    proxy.server.once('error', reject);
    proxy.server.listen(0, '127.0.0.1', resolve);
  });
  proxy.port = proxy.server.address().port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  return proxy;
}

class Proxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    /** Request heads seen, in order: `{ method, path, headers, at }` (headers lower-cased). */
    this.requests = [];
    /** Client connections open right now, and the most ever open at once. */
    this.open = 0;
    this.maxOpen = 0;
    /** Connections cut by a pattern rule. */
    this.patternCuts = 0;
    /** Pieces of at most this many bytes, one per timer tick (0: forward as received). */
    this.slice = 0;
    this._conns = new Set();
    this._all = [];
    this._rules = [];
    this.server = net.createServer((client) => this._accept(client));
  }

  /**
   * Cuts the next connection whose response matches `pattern` (a RegExp, matched against the
   * response bytes read as latin1) right after the match: the bytes up to it are delivered,
   * then both sides are closed.
   */
  cutAfter(pattern) {
    this._rules.push(pattern);
  }

  /** Whether any response so far (open or closed connections) matched `pattern`. */
  sawResponse(pattern) {
    return this._all.some((c) => pattern.test(c.seen));
  }

  /** Closes every open connection, both sides, at once. */
  cutAll() {
    for (const c of this._conns) this._cut(c);
  }

  /** From now on, the open connections forward nothing more to the client (sockets stay open). */
  holdOpen() {
    for (const c of this._conns) c.held = true;
  }

  close() {
    this.cutAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  _accept(client) {
    const conn = {
      client,
      upstream: net.connect(this.targetPort, '127.0.0.1'),
      head: '',
      skip: 0,
      seen: '',
      held: false,
      queue: [],
      writing: false,
      done: false,
    };
    this._conns.add(conn);
    this._all.push(conn);
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    const finish = () => {
      if (conn.done) return;
      conn.done = true;
      this._conns.delete(conn);
      this.open--;
      client.destroy();
      conn.upstream.destroy();
    };
    client.on('close', finish);
    client.on('error', finish);
    conn.upstream.on('close', finish);
    conn.upstream.on('error', finish);
    client.on('data', (d) => {
      this._requestBytes(conn, d.toString('latin1'));
      conn.upstream.write(d);
    });
    conn.upstream.on('data', (d) => this._fromServer(conn, d));
  }

  /** Records each request head on the connection (a browser reuses one after a preflight). */
  _requestBytes(conn, text) {
    conn.head += text;
    for (;;) {
      if (conn.skip > 0) {
        const n = Math.min(conn.skip, conn.head.length);
        conn.skip -= n;
        conn.head = conn.head.slice(n);
        if (conn.skip > 0) return;
      }
      const end = conn.head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const req = parseHead(conn.head.slice(0, end));
      this.requests.push(req);
      conn.head = conn.head.slice(end + 4);
      conn.skip = Number(req.headers['content-length'] ?? 0);
    }
  }

  _fromServer(conn, data) {
    if (conn.done || conn.held) return;
    const before = conn.seen.length;
    conn.seen += data.toString('latin1');
    for (let i = 0; i < this._rules.length; i++) {
      const m = this._rules[i].exec(conn.seen);
      if (m && m.index + m[0].length > before) {
        this._rules.splice(i, 1);
        this.patternCuts++;
        const upto = m.index + m[0].length - before;
        this._send(conn, data.subarray(0, upto));
        this._send(conn, null); // then close
        return;
      }
    }
    this._send(conn, data);
  }

  /** Queues bytes for the client (`null`: close after what is queued). */
  _send(conn, data) {
    if (this.slice > 0 && data !== null) {
      for (let i = 0; i < data.length; i += this.slice) conn.queue.push(data.subarray(i, i + this.slice));
    } else {
      conn.queue.push(data);
    }
    this._pump(conn);
  }

  _pump(conn) {
    if (conn.writing || conn.done) return;
    const next = conn.queue.shift();
    if (next === undefined) return;
    if (next === null) {
      conn.upstream.destroy();
      conn.client.end(() => conn.client.destroy());
      return;
    }
    conn.client.write(next);
    if (this.slice > 0) {
      conn.writing = true;
      setTimeout(() => {
        conn.writing = false;
        this._pump(conn);
      }, 1);
    } else {
      this._pump(conn);
    }
  }

  _cut(conn) {
    conn.queue.length = 0;
    conn.client.destroy();
    conn.upstream.destroy();
  }
}

function parseHead(head) {
  const [requestLine, ...lines] = head.split('\r\n');
  const [method, path] = requestLine.split(' ');
  const headers = {};
  for (const l of lines) {
    const c = l.indexOf(':');
    if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
  }
  return { method, path, headers, at: Date.now() };
}
