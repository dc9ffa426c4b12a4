//! The Lua scripts. Each runs atomically on the session's slot (both keys share the hash tag
//! `{s:<sid>}`), and each starts with the same fence, so every path that touches a session
//! notices lost data the same way.

use redis::Script;

/// Opens every script: reads the epoch and head, and starts a new epoch when the meta is
/// missing (restart without persistence, `FLUSHDB`, eviction, TTL) or when the caller has
/// seen a head above Redis's in the same epoch (a failover that lost writes). A new epoch
/// deletes the old log first, since `XADD` refuses ids at or below the stream's top.
///
/// KEYS[1] meta, KEYS[2] log. ARGV[1] epoch candidate (hex), ARGV[2] the epoch the caller
/// holds ('' for none), ARGV[3] the head the caller holds in that epoch.
const FENCE: &str = r"
local meta, log = KEYS[1], KEYS[2]
local m = redis.call('HMGET', meta, 'e', 's', 'b', 'lo', 'o', 'tk', 'ck', 'x')
local e, owner, tk, ck, x = m[1], m[5], m[6], m[7], m[8]
local s, b, lo = 0, 0, 1
local cause = ''
if e then
  s = tonumber(m[2]) or 0
  b = tonumber(m[3]) or 0
  lo = tonumber(m[4]) or 1
  if ARGV[2] == e and tonumber(ARGV[3]) > s then cause = 'regression' end
elseif ARGV[2] ~= '' then
  cause = 'missing'
else
  cause = 'new'
end
if cause ~= '' then
  redis.call('DEL', log)
  e = ARGV[1]
  s, b, lo = 0, 0, 1
  redis.call('HSET', meta, 'e', e, 's', 0, 'b', 0, 'lo', 1)
  redis.call('HDEL', meta, 'ck', 't', 'tk', 'x')
  tk, ck, x = false, false, false
end
local function seqof(id) return tonumber(string.match(id, '^(%d+)')) end
local function fmt(n) return string.format('%d', n) end
-- How long the session's keys live after a refresh: the TTL and an eighth of it more, so a
-- write may skip the refresh for an eighth of the TTL and the keys still outlive it by the
-- TTL.
local function keep_ms(ttl) return ttl + math.floor(ttl / 8) end
-- The compare and set of a tracked session: the caller judged its events as the ones after
-- head `he` of epoch `ee`; `ee` is '' for events of a session the caller found untracked
-- (refused once another node made it tracked, meta `tk`) and '*' for a caller that tracks
-- nothing. An empty log takes events judged on an empty session, whatever its epoch.
local judged = false
local function behind(ee, he)
  if ee == '*' then return false end
  if ee == '' then return tk ~= false and tk ~= nil end
  judged = true
  if s == 0 and tonumber(he) == 0 then return false end
  return ee ~= e or tonumber(he) ~= s
end
-- Splits concatenated frame bodies (each ends with the blank line, which nothing inside a
-- body contains).
local function bodies_of(all)
  local out, pos = {}, 1
  while pos <= #all do
    local stop = string.find(all, '\n\n', pos, true)
    if not stop then break end
    out[#out + 1] = string.sub(all, pos, stop + 1)
    pos = stop + 2
  end
  return out
end
";

/// Defines `append(bodies)`, which every script that writes to the log calls once: assigns
/// the seqs, XADDs the frames with their `id:` lines, trims the log by count and by bytes,
/// refreshes the TTLs when due and wakes the node holding the session's connection. Returns
/// `first, last, lowest_retained_seq, woke`.
///
/// ARGV[4] max events, ARGV[5] max bytes, ARGV[6] TTL in ms, ARGV[7] the writing node,
/// ARGV[8] inline maximum for wakes (bytes), ARGV[9] node channel prefix, ARGV[10] session id.
const APPEND_FN: &str = r"
local function append(bodies)
  local n = #bodies
  local last = redis.call('HINCRBY', meta, 's', n)
  local first = last - n + 1
  local wake = owner and owner ~= ARGV[7]
  local frames, lens, total = {}, {}, 0
  local prefix = 'id: ' .. e .. '-'
  for i = 1, n do
    local seq = fmt(first + i - 1)
    local f = prefix .. seq .. '\n' .. bodies[i]
    if i > 1 or s == 0 then
      redis.call('XADD', log, seq .. '-0', 'f', f)
    elseif not redis.call('XADD', log, 'NOMKSTREAM', seq .. '-0', 'f', f) then
      -- The log is gone while its meta stayed (evicted on its own): it starts again here,
      -- and the new one needs its TTL.
      lo, b, x = first, 0, false
      redis.call('XADD', log, seq .. '-0', 'f', f)
    end
    if wake then
      frames[i] = f
      lens[i] = #f
    end
    total = total + #f
  end
  s = last
  b = b + total
  local maxlen, maxbytes = tonumber(ARGV[4]), tonumber(ARGV[5])
  local cur = lo
  local done = false
  while not done do
    if cur >= last or ((last - cur + 1) <= maxlen and b <= maxbytes) then break end
    -- Read only as many of the oldest entries as the count bound drops (a few more when the
    -- byte bound is what is exceeded), not a fixed page of frames.
    local k = (last - cur + 1) - maxlen
    if k < 1 then k = 8 elseif k > 64 then k = 64 end
    local batch = redis.call('XRANGE', log, fmt(cur) .. '-0', '+', 'COUNT', k)
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      local seq = seqof(entry[1])
      if seq >= last or ((last - seq + 1) <= maxlen and b <= maxbytes) then
        cur = seq
        done = true
        break
      end
      b = b - #entry[2][2]
      cur = seq + 1
    end
  end
  if cur > lo then redis.call('XTRIM', log, 'MINID', fmt(cur) .. '-0') end
  lo = cur
  local fields = {'b', b, 'lo', cur}
  if judged and not tk then
    fields[#fields + 1], fields[#fields + 2] = 'tk', 1
    tk = '1'
  end
  -- The keys' TTL is refreshed (two PEXPIREs) only when an eighth of it passed since the
  -- last append that did (meta 'x', by Redis's clock): they live keep_ms after it, so at
  -- least the TTL after this append either way.
  local ttl = tonumber(ARGV[6])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local refreshed = tonumber(x)
  local refresh = not refreshed or now < refreshed or now - refreshed >= math.floor(ttl / 8)
  if refresh then
    fields[#fields + 1], fields[#fields + 2] = 'x', now
    x = now
  end
  redis.call('HSET', meta, unpack(fields))
  if refresh then
    redis.call('PEXPIRE', meta, keep_ms(ttl))
    redis.call('PEXPIRE', log, keep_ms(ttl))
  end
  local woke = 0
  if wake then
    local head = 'w ' .. ARGV[10] .. ' ' .. e .. ' ' .. fmt(first) .. ' ' .. fmt(last) .. ' '
    local payload
    if total <= tonumber(ARGV[8]) then
      payload = head .. table.concat(lens, ',') .. '\n' .. table.concat(frames)
    else
      payload = head .. '-\n'
    end
    redis.call('PUBLISH', ARGV[9] .. owner, payload)
    woke = 1
  end
  return first, last, cur, woke
end
-- Whether a tracked session's checkpoint (meta `ck`, `t`) should be taken again after an
-- append: it is older than the middle of the retained log while the log is at least half
-- full, or trimming already passed it. Taken that way, trimming never reaches a checkpoint
-- before a newer one replaces it, unless one batch trims half the log.
local function due(last, cur)
  if not judged then return 0 end
  local ck = tonumber(ck) or 0
  if ck + 1 < cur then return 1 end
  local w = last - cur + 1
  if 2 * (ck + 1) < 2 * cur + w and (2 * w >= tonumber(ARGV[4]) or 2 * b >= tonumber(ARGV[5])) then
    return 1
  end
  return 0
end
";

/// Appends one event or a batch, once per idempotency key when one is given.
///
/// KEYS[3] the idempotency key's record. ARGV[4..10] as `append`, ARGV[11] the publish's
/// fingerprint ('' without a key), ARGV[12] and ARGV[13] the epoch and head the events were
/// judged after (`behind`), ARGV[14..] the frame bodies (everything after the `id:` line).
///
/// Returns `{epoch, first_seq, last_seq, lowest_retained_seq, cause, woke, checkpoint_due}`;
/// when the key was used before, `{'again', record}` with the record `'<fingerprint> <epoch>
/// <first> <n>'`; when the log's head is not the one the events were judged after,
/// `{'behind'}`. Nothing is appended in the last two cases. A record is kept for ten minutes
/// or the log's TTL, whichever is longer.
const APPEND: &str = r"
local n = #ARGV - 13
if ARGV[11] ~= '' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {'again', prev} end
end
if behind(ARGV[12], ARGV[13]) then return {'behind'} end
local bodies = {}
for i = 1, n do bodies[i] = ARGV[13 + i] end
local first, last, cur, woke = append(bodies)
if ARGV[11] ~= '' then
  local keep = math.max(600000, tonumber(ARGV[6]))
  redis.call('SET', KEYS[3], ARGV[11] .. ' ' .. e .. ' ' .. fmt(first) .. ' ' .. fmt(n), 'PX', keep)
end
return {e, first, last, cur, cause, woke, due(last, cur)}
";

/// Stores an approval request and appends its announcement, atomically.
///
/// KEYS[3] the session's approvals (HASH: id -> `'<announcing event id or -> <created, ms by
/// Redis's clock> <json>'`),
/// KEYS[4] the pending ones (ZSET: id -> deadline in ms), KEYS[5] the resolved ones (ZSET:
/// id -> when). ARGV[4..10] as `append`, ARGV[11] the approval id, ARGV[12] its deadline in
/// ms, ARGV[13] the most pending approvals, ARGV[14] its record (JSON), ARGV[15] the
/// announcement's frame bodies, concatenated ('' for a silent request), ARGV[16] how long the
/// approval keys live at least (ms), ARGV[17] and ARGV[18] the epoch and head the
/// announcement was written after (`behind`), ARGV[19] which of the bodies is the notice
/// itself (from 0: a tracker may write frames around it).
///
/// Returns `{'ok', epoch, first, last, lowest_retained_seq, cause, woke}`, `{'dup'}` when the
/// id is taken, `{'full'}` at the pending maximum, `{'behind'}` when the log's head moved.
const CREATE_APPROVAL: &str = r"
local id = ARGV[11]
if redis.call('HEXISTS', KEYS[3], id) == 1 then return {'dup'} end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[13]) then return {'full'} end
if behind(ARGV[17], ARGV[18]) then return {'behind'} end
local at, first, last, cur, woke = '-', 0, 0, lo, 0
local bodies = bodies_of(ARGV[15])
if #bodies > 0 then
  first, last, cur, woke = append(bodies)
  at = e .. '-' .. fmt(first + tonumber(ARGV[19]))
end
local t = redis.call('TIME')
local created = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[3], id, at .. ' ' .. fmt(created) .. ' ' .. ARGV[14])
redis.call('ZADD', KEYS[4], ARGV[12], id)
for i = 3, 4 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[16]) then redis.call('PEXPIRE', KEYS[i], ARGV[16]) end
end
return {'ok', e, first, last, cur, cause, woke}
";

/// Resolves a pending approval and appends the outcome's announcement, atomically: the first
/// resolution wins. Redis's clock judges the deadline, so every node agrees on it: a decision
/// at or after the deadline settles the approval as timed out instead.
///
/// KEYS[3..5] as the create script. ARGV[4..10] as `append`, ARGV[11] the approval id,
/// ARGV[12] 'decide' or 'expire' (only once the deadline passed), ARGV[13] the decided
/// record, ARGV[14] its announcement's bodies, ARGV[15] the timed-out record, ARGV[16] its
/// announcement's bodies (concatenated; '' for a silent request), ARGV[17] how many resolved
/// approvals to keep, ARGV[18] and ARGV[19] the epoch and head the announcements were written
/// after (`behind`).
///
/// Returns `{'ok' | 'expired', epoch, first, last, lowest_retained_seq, cause, woke, record,
/// now_ms}`,
/// `{'final', record}` when already resolved, `{'early', deadline}` for an expiry before the
/// deadline, `{'unknown'}`, `{'behind'}` when the log's head moved.
const RESOLVE_APPROVAL: &str = r"
local id = ARGV[11]
local rec = redis.call('HGET', KEYS[3], id)
if not rec then return {'unknown'} end
local dl = redis.call('ZSCORE', KEYS[4], id)
if not dl then return {'final', rec} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = now >= tonumber(dl)
if ARGV[12] == 'expire' and not expired then return {'early', dl} end
if behind(ARGV[18], ARGV[19]) then return {'behind'} end
local record, body, outcome = ARGV[13], ARGV[14], 'ok'
if expired then record, body, outcome = ARGV[15], ARGV[16], 'expired' end
local kept = string.match(rec, '^(%S+ %d+) ') or string.match(rec, '^(%S+)')
local stored = kept .. ' ' .. record
redis.call('ZREM', KEYS[4], id)
redis.call('HSET', KEYS[3], id, stored)
redis.call('ZADD', KEYS[5], now, id)
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[5], ttl) end
local extra = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[17])
if extra > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[5], extra)
  for i = 1, #gone, 2 do redis.call('HDEL', KEYS[3], gone[i]) end
end
local first, last, cur, woke = 0, 0, lo, 0
local bodies = bodies_of(body)
if #bodies > 0 then first, last, cur, woke = append(bodies) end
return {outcome, e, first, last, cur, cause, woke, stored, now}
";

/// Reads the session's position and the entries after a seq, optionally claiming the
/// session's connection for a node.
///
/// KEYS[3] the lease (Reject policy: the holder's client key, expiring unless refreshed).
/// ARGV[4] claim mode: 'force' (a connect), 'lease' (a connect under the Reject policy),
/// 'ifnone' (re-claim after lost data) or ''. ARGV[5] node, ARGV[6] connection token,
/// ARGV[7] TTL in ms, ARGV[8] node channel prefix, ARGV[9] session id, ARGV[10] read after
/// this seq (in the caller's epoch), ARGV[11] count, ARGV[12] lease in ms, ARGV[13] the
/// connecting client's key ('' without a client id: it matches no lease).
///
/// ARGV[14] '1' when the connecting client can be told apart if it comes back after being
/// superseded (it has a client id), ARGV[15] its client
/// id ('' without one), ARGV[16] the supersede grace in ms, ARGV[17] the caller's clock in
/// ms, ARGV[18] its instance key (`<clientId>\n<identity>`, both possibly empty).
///
/// A 'lease' claim is refused (`claimed` = -1, nothing changes) while another node holds an
/// unexpired lease for another client key; the holder's own node decides itself, as its
/// broker knows whether that connection is still alive.
///
/// A 'force' claim records whom it superseded (`v` the old instance key, `vt` when, `vb` the
/// token of the connection that did it), unless the same client id replaced itself. It is
/// refused (`claimed` = -2, nothing changes) when that victim comes back within the grace while
/// the connection that superseded it still holds the session: the two-tab rule (HTTP 204) on
/// every node, not just the one that saw both connections.
///
/// KEYS[4] the pending approvals, KEYS[5] the approvals (see the create script); ARGV[19] '1'
/// to read the pending approvals' records too.
///
/// Returns `{epoch, head, lowest_retained_seq, cause, claimed, owned_by_node, {id, frame, ...},
/// {record, ...}}`. When the epoch is not the caller's, the entries start at the lowest
/// retained seq.
const SYNC: &str = r"
local claimed = 0
if ARGV[4] ~= '' then
  local o = redis.call('HMGET', meta, 'o', 'c', 'k', 'v', 'vt', 'vb')
  if ARGV[4] == 'force' and o[1] and ARGV[14] == '1' and o[4] == ARGV[18] and o[6] == o[2]
      and tonumber(ARGV[17]) - (tonumber(o[5]) or 0) < tonumber(ARGV[16]) then
    claimed = -2
  end
  if ARGV[4] == 'lease' and o[1] and o[1] ~= ARGV[5] then
    local held = redis.call('GET', KEYS[3])
    if held and (ARGV[13] == '' or held ~= ARGV[13]) then claimed = -1 end
  end
  if claimed == 0 and (ARGV[4] == 'force' or ARGV[4] == 'lease' or not o[1]) then
    redis.call('HSET', meta, 'o', ARGV[5], 'c', ARGV[6], 'k', ARGV[18], 'pk', o[3] or '')
    claimed = 1
    if ARGV[4] == 'force' and o[1] then
      local oldcid = string.match(o[3] or '', '^([^\n]*)')
      if oldcid ~= '' and oldcid == ARGV[15] then
        redis.call('HDEL', meta, 'v', 'vt', 'vb')
      else
        redis.call('HSET', meta, 'v', o[3] or '', 'vt', ARGV[17], 'vb', ARGV[6])
      end
    end
    if ARGV[4] == 'lease' then
      redis.call('SET', KEYS[3], ARGV[13], 'PX', ARGV[12])
    end
    if o[1] and o[1] ~= ARGV[5] then
      redis.call('PUBLISH', ARGV[8] .. o[1], 'sup ' .. ARGV[9] .. ' ' .. (o[2] or ''))
    end
  end
end
if cause ~= '' or claimed == 1 then
  redis.call('PEXPIRE', meta, keep_ms(tonumber(ARGV[7])))
  redis.call('PEXPIRE', log, keep_ms(tonumber(ARGV[7])))
end
local lo = s + 1
local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
if #oldest > 0 then lo = seqof(oldest[1][1]) end
local start = tonumber(ARGV[10])
if ARGV[2] ~= e or start < lo - 1 then start = lo - 1 end
local entries = {}
if start < s then
  local r = redis.call('XRANGE', log, '(' .. fmt(start) .. '-0', '+', 'COUNT', tonumber(ARGV[11]))
  for i, entry in ipairs(r) do
    entries[2 * i - 1] = entry[1]
    entries[2 * i] = entry[2][2]
  end
end
local mine = 0
if redis.call('HGET', meta, 'o') == ARGV[5] then mine = 1 end
local pending = {}
if ARGV[19] == '1' then
  local ids = redis.call('ZRANGE', KEYS[4], 0, -1)
  if #ids > 0 then pending = redis.call('HMGET', KEYS[5], unpack(ids)) end
end
return {e, s, lo, cause, claimed, mine, entries, pending}
";

/// Stores a tracked session's checkpoint in its meta (`ck` the seq it stands for, `t` its
/// frames as a JSON array), only if it is newer than the one there and within the session's
/// epoch and head.
///
/// KEYS[1] meta. ARGV[1] epoch, ARGV[2] seq, ARGV[3] frames. Returns 1 when stored.
const CHECKPOINT: &str = r"
local m = redis.call('HMGET', KEYS[1], 'e', 's', 'ck')
local seq = tonumber(ARGV[2])
if m[1] ~= ARGV[1] or seq > (tonumber(m[2]) or 0) or seq <= (tonumber(m[3]) or 0) then
  return 0
end
redis.call('HSET', KEYS[1], 'ck', ARGV[2], 't', ARGV[3])
return 1
";

/// Gives the session's connection up, only if this node's connection still holds it.
///
/// KEYS[1] meta, KEYS[2] lease. ARGV[1] node, ARGV[2] connection token. Returns 1 when
/// released.
const RELEASE: &str = r"
local o = redis.call('HMGET', KEYS[1], 'o', 'c')
if o[1] == ARGV[1] and o[2] == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'o', 'c', 'k', 'pk')
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
";

/// Hands the session's connection back to the connection of this node that held it before a
/// connect that claimed it and was then refused by the broker (Reject policy, a superseded
/// client coming back): only if the refused connect's claim is still in place.
///
/// KEYS[1] meta. ARGV[1] node, ARGV[2] the refused connect's token, ARGV[3] the previous
/// token. Returns 1 when handed back (with the holder's instance key the claim saved).
const RESTORE: &str = r"
local o = redis.call('HMGET', KEYS[1], 'o', 'c', 'pk')
if o[1] == ARGV[1] and o[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'c', ARGV[3], 'k', o[3] or '')
  return 1
end
return 0
";

/// Drops an entry of the deadline index, only if its score is still the one the sweeper
/// read (a newer approval of the same id may have moved it).
///
/// KEYS[1] the index. ARGV[1] member, ARGV[2] score.
const UNINDEX: &str = r"
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
";

pub(crate) struct Scripts {
    pub(crate) append: Script,
    pub(crate) create_approval: Script,
    pub(crate) resolve_approval: Script,
    pub(crate) unindex: Script,
    pub(crate) sync: Script,
    pub(crate) release: Script,
    pub(crate) restore: Script,
    pub(crate) checkpoint: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            append: Script::new(&format!("{FENCE}{APPEND_FN}{APPEND}")),
            create_approval: Script::new(&format!("{FENCE}{APPEND_FN}{CREATE_APPROVAL}")),
            resolve_approval: Script::new(&format!("{FENCE}{APPEND_FN}{RESOLVE_APPROVAL}")),
            unindex: Script::new(UNINDEX),
            sync: Script::new(&format!("{FENCE}{SYNC}")),
            release: Script::new(RELEASE),
            restore: Script::new(RESTORE),
            checkpoint: Script::new(CHECKPOINT),
        }
    }
}
