// Runs in headless Chromium: the cut-mid-frame scenario with the real fetch, streams and
// sessionStorage of a browser, then posts what it saw back to the test.

import { TetherEventSource } from '/src/index.js';

const params = new URLSearchParams(location.search);
const api = params.get('api');
const last = params.get('last');
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });

try {
  const es = new TetherEventSource(`${api}/api/sse/session/browser`, { token: 'tok-1' });
  const seen = { messages: [], reconnecting: [], opens: 0 };
  es.onopen = () => seen.opens++;
  es.onmessage = (e) => seen.messages.push([JSON.parse(e.data).n, e.lastEventId]);
  es.addEventListener('reconnecting', (e) =>
    seen.reconnecting.push({ cause: e.cause, delay: e.delay, lastEventIdNow: es.lastEventId }),
  );
  const timer = setInterval(() => {
    if (es.lastEventId !== last) return;
    clearInterval(timer);
    es.close();
    report({
      ...seen,
      readyState: es.readyState,
      clientId: es.clientId,
      storedClientId: sessionStorage.getItem('tether-client:clientId'),
      userAgent: navigator.userAgent,
    });
  }, 50);
} catch (error) {
  report({ error: String(error && error.stack ? error.stack : error) });
}
