// A tiny HTTP server on 127.0.0.1 for answers the hub does not give on demand (503 with
// Retry-After, statuses, a stream that stops writing).

import http from 'node:http';

/**
 * `handler(req, res, n)` answers request number `n` (from 0). Resolves to
 * `{ url, requests, close() }`; each request is recorded as `{ url, headers, at, active }`,
 * where `active` counts the requests whose response was still open when it arrived (itself
 * included).
 */
export async function startFake(handler) {
  const requests = [];
  const sockets = new Set();
  let active = 0;
  const server = http.createServer((req, res) => {
    active++;
    let done = false;
    const end = () => {
      if (!done) {
        done = true;
        active--;
      }
    };
    res.on('close', end);
    res.on('finish', end);
    const entry = { url: new URL(req.url, 'http://x'), headers: req.headers, at: Date.now(), active };
    requests.push(entry);
    handler(req, res, requests.length - 1);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    requests,
    /** Requests whose response is still open. */
    active: () => active,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Starts an event stream response. */
export function stream(res, body = '') {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  if (body) res.write(body);
}
