// The example page's script, bundled into page.bundle.js (see clients/js/scripts/bundle-example.mjs)
// so the example serves it with no CDN and no install.
//
// The page is an AG-UI client: TetherAgent of tether-client/agui. "Start run" posts the run
// (its response is the thread's stream); afterwards the page stays attached to the thread with
// connect(), so it sees the agent go on after an approval. A lost connection resumes exactly
// after the last event; a reload finds the thread and its last event id in sessionStorage and
// reattaches through a prelude. The page's URL carries the token the example printed
// (`/?token=...`): the agent sends it as `Authorization: Bearer`, and so does the decision.

import { TetherAgent } from 'tether-client/agui';

const THREAD_KEY = 'tether-demo:thread';
const token = new URLSearchParams(location.search).get('token');
const bearer = token ? { Authorization: 'Bearer ' + token } : {};
const $ = (id) => document.getElementById(id);

// What the page saw, for people (the log) and for the example's browser test.
const seen = { deltas: [], states: [], resyncs: 0, decisions: [] };
window.tetherDemo = seen;

const views = { messages: new Map(), tools: new Map() };
let interrupts = [];
let stopped = false;

const agent = new TetherAgent({
  token: token ?? undefined,
  follow: true,
  onConnection: showConnection,
});

// ---- connection state -----------------------------------------------------------------------

function showConnection(c) {
  seen.states.push(c.state);
  const dot = $('dot');
  const text = $('conn');
  switch (c.state) {
    case 'connected':
      dot.className = 'dot open';
      text.textContent = seen.resyncs ? `connected (resynced ×${seen.resyncs})` : 'connected';
      break;
    case 'reconnecting':
      dot.className = 'dot connecting';
      text.textContent = `reconnecting (attempt ${c.attempt}, in ${(c.delay / 1000).toFixed(1)} s)`;
      log(`connection lost (${c.cause}); reconnecting after ${agent.lastEventId ?? 'the start'}`, null, 'signal');
      break;
    case 'resynced':
      seen.resyncs++;
      dot.className = 'dot connecting';
      text.textContent = 'resynced';
      log(`history lost (${c.reason}): the page starts again from the thread's snapshot`, null, 'signal');
      break;
    case 'stopped':
      dot.className = 'dot closed';
      text.textContent = c.reason === 'superseded' ? 'stopped (another tab took over)' : 'stopped';
      if (c.reason === 'superseded') stopped = true;
      break;
  }
  $('lastid').textContent = agent.lastEventId ?? '–';
}

function log(text, id, cls) {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  li.textContent = text;
  if (id) {
    const s = document.createElement('span');
    s.className = 'id';
    s.textContent = '  #' + id;
    li.append(s);
  }
  $('log').append(li);
  $('log').scrollTop = $('log').scrollHeight;
}

// ---- the conversation -----------------------------------------------------------------------

function chat() {
  const c = $('chat');
  c.querySelector('.empty')?.remove();
  return c;
}

function view(map, id, cls) {
  let el = map.get(id);
  if (!el) {
    el = document.createElement('div');
    el.className = cls;
    chat().append(el);
    map.set(id, el);
  }
  return el;
}

/** Renders agent.messages: snapshots and live events end up there alike. */
function renderMessages(streaming) {
  for (const m of agent.messages) {
    if (m.role === 'tool') {
      const el = view(views.tools, m.toolCallId, 'tool');
      el.dataset.result = typeof m.content === 'string' ? m.content : '';
      renderTool(el);
      continue;
    }
    const el = view(views.messages, m.id, 'msg ' + m.role);
    el.innerHTML = '<span class="who"></span><span class="text"></span>';
    el.querySelector('.who').textContent = m.role;
    el.querySelector('.text').textContent = typeof m.content === 'string' ? m.content : '';
    el.classList.toggle('streaming', streaming.has(m.id));
    for (const call of m.toolCalls ?? []) {
      const t = view(views.tools, call.id, 'tool');
      t.dataset.call = `${call.function.name}(${call.function.arguments})`;
      renderTool(t);
    }
  }
  $('lastid').textContent = agent.lastEventId ?? '–';
}

function renderTool(el) {
  el.textContent = 'tool call: ' + (el.dataset.call ?? '…');
  if (el.dataset.result) {
    const r = document.createElement('div');
    r.className = 'result';
    r.textContent = '→ ' + el.dataset.result;
    el.append(r);
  }
}

/** Pending approvals with their deadline; each card approves or rejects once. */
function renderApprovals() {
  document.querySelectorAll('.approval').forEach((el) => el.remove());
  for (const i of interrupts) {
    const box = document.createElement('div');
    box.className = 'approval';
    box.dataset.id = i.id;
    const payload = i.metadata?.payload ?? {};
    box.innerHTML =
      '<p><b>Approval needed</b></p><p class="what"></p><p class="until"></p>' +
      '<div class="actions"><button class="approve">Approve</button><button class="reject">Reject</button></div>';
    box.querySelector('.what').textContent = `The agent wants to run ${payload.tool ?? 'a tool'} on ${payload.path ?? '?'}.`;
    box.querySelector('.until').textContent = i.expiresAt
      ? `Answer before ${new Date(i.expiresAt).toLocaleTimeString()} (deadline ${i.expiresAt}).`
      : 'No deadline.';
    box.querySelector('.approve').onclick = () => decide(i, true);
    box.querySelector('.reject').onclick = () => decide(i, false);
    chat().append(box);
  }
}

async function decide(interrupt, approved) {
  document.querySelectorAll('.approval button').forEach((b) => (b.disabled = true));
  const url = `/api/sessions/${encodeURIComponent(agent.threadId)}/approvals/${encodeURIComponent(interrupt.id)}/decision`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...bearer },
    body: JSON.stringify({ approved }),
  });
  seen.decisions.push(res.status);
  log(`decision ${approved ? 'approve' : 'reject'} → HTTP ${res.status}`, null, 'signal');
  interrupts = interrupts.filter((i) => i.id !== interrupt.id);
  renderApprovals();
}

// What the agent applies, as AG-UI subscriber callbacks.
const streaming = new Set();
const subscriber = {
  onEvent: ({ event }) => {
    if (event.type === 'TEXT_MESSAGE_CONTENT') seen.deltas.push(event.delta);
    // Events are applied after their chunk was read, so the stream's last id may already be
    // ahead of this one: the header shows it, the log does not pair them.
    log(event.type + (event.delta ? ' ' + JSON.stringify(event.delta) : ''));
  },
  onRunStartedEvent: () => {
    // A prelude or the next run announces whatever is still pending again.
    interrupts = [];
    renderApprovals();
  },
  onTextMessageStartEvent: ({ event }) => {
    streaming.add(event.messageId);
  },
  onTextMessageEndEvent: ({ event }) => {
    streaming.delete(event.messageId);
  },
  onMessagesSnapshotEvent: () => {
    streaming.clear();
  },
  onMessagesChanged: () => renderMessages(streaming),
  onRunFinishedEvent: ({ outcome, interrupts: pending }) => {
    interrupts = outcome === 'interrupt' ? pending : [];
    renderApprovals();
  },
  onRunErrorEvent: ({ event }) => log('run error: ' + event.message, null, 'signal'),
};

// ---- runs and reattaching -------------------------------------------------------------------

/** Stays attached to the thread (through reloads too); comes back after a stop, bounded. */
async function follow() {
  for (let round = 0; round < 100 && !stopped; round++) {
    try {
      await agent.connectAgent(undefined, subscriber);
    } catch (error) {
      log('reattach failed: ' + error.message, null, 'signal');
    }
    if (stopped) return;
    await new Promise((r) => setTimeout(r, 1500));
  }
}

function useThread(thread) {
  agent.threadId = thread;
  $('thread').textContent = thread;
  $('drop').disabled = false;
}

$('start').onclick = async () => {
  $('start').disabled = true;
  const thread = 'demo-' + Math.random().toString(36).slice(2, 10);
  sessionStorage.setItem(THREAD_KEY, thread);
  useThread(thread);
  try {
    await agent.runAgent(undefined, subscriber);
  } catch (error) {
    log('run failed: ' + error.message, null, 'signal');
  }
  follow();
};

$('drop').onclick = () => {
  log('connection dropped by the page; reattaching after ' + (agent.lastEventId ?? 'the start'), null, 'signal');
  agent.abortRun();
};

const stored = sessionStorage.getItem(THREAD_KEY);
if (stored) {
  $('start').disabled = true;
  useThread(stored);
  log('reloaded: reattaching to ' + stored + ' after ' + (agent.lastEventId ?? 'the start'), null, 'signal');
  follow();
}
