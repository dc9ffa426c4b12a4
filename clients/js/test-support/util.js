// Small helpers shared by the tests: bounded waiting and an event recorder.

/** Polls `cond` every 20 ms until it is truthy; fails after `ms` with `what` in the message. */
export async function waitFor(cond, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

const TYPES = ['open', 'message', 'error', 'reconnecting', 'resync', 'superseded', 'close'];

/**
 * Records what a TetherEventSource dispatches: `log` holds `{ type, at, ...fields }`;
 * `messages` the data of message events (parsed JSON where possible).
 */
export function record(source, extraTypes = []) {
  const rec = { log: [], messages: [] };
  for (const type of [...TYPES, ...extraTypes]) {
    source.addEventListener(type, (e) => {
      const entry = { type, at: Date.now(), lastEventIdNow: source.lastEventId, readyState: source.readyState };
      for (const k of ['data', 'lastEventId', 'attempt', 'delay', 'cause', 'status', 'reason', 'resumeFrom']) {
        if (e[k] !== undefined) entry[k] = e[k];
      }
      rec.log.push(entry);
      if (type === 'message' || extraTypes.includes(type)) {
        let data = e.data;
        try {
          data = JSON.parse(e.data);
        } catch {
          // keep the text
        }
        rec.messages.push(data);
      }
    });
  }
  rec.of = (type) => rec.log.filter((e) => e.type === type);
  return rec;
}
