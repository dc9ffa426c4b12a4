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
local m = redis.call('HMGET', meta, 'e', 's', 'b', 'lo', 'o')
local e, owner = m[1], m[5]
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
end
local function seqof(id) return tonumber(string.match(id, '^(%d+)')) end
local function fmt(n) return string.format('%d', n) end
";

/// Appends one event or a batch, once per idempotency key when one is given.
///
/// KEYS[3] the idempotency key's record. ARGV[4] max events, ARGV[5] max bytes, ARGV[6] TTL
/// in ms, ARGV[7] the publishing node, ARGV[8] inline maximum for wakes (bytes), ARGV[9] node
/// channel prefix, ARGV[10] session id, ARGV[11] the publish's fingerprint ('' without a
/// key), ARGV[12..] the frame bodies (everything after the `id:` line).
///
/// Returns `{epoch, first_seq, last_seq, lowest_retained_seq, cause, woke}`, or, when the key
/// was used before, `{'again', record}` with the record `'<fingerprint> <epoch> <first> <n>'`
/// and nothing appended. A record is kept for ten minutes or the log's TTL, whichever is
/// longer.
const APPEND: &str = r"
local n = #ARGV - 11
if ARGV[11] ~= '' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {'again', prev} end
end
if s > 0 and redis.call('EXISTS', log) == 0 then lo = s + 1; b = 0 end
local last = redis.call('HINCRBY', meta, 's', n)
local first = last - n + 1
local frames, lens, total = {}, {}, 0
local prefix = 'id: ' .. e .. '-'
for i = 1, n do
  local seq = first + i - 1
  local f = prefix .. fmt(seq) .. '\n' .. ARGV[11 + i]
  redis.call('XADD', log, fmt(seq) .. '-0', 'f', f)
  frames[i] = f
  lens[i] = #f
  total = total + #f
end
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
redis.call('HSET', meta, 'b', b, 'lo', cur)
redis.call('PEXPIRE', meta, ARGV[6])
redis.call('PEXPIRE', log, ARGV[6])
if ARGV[11] ~= '' then
  local keep = math.max(600000, tonumber(ARGV[6]))
  redis.call('SET', KEYS[3], ARGV[11] .. ' ' .. e .. ' ' .. fmt(first) .. ' ' .. fmt(n), 'PX', keep)
end
local woke = 0
if owner and owner ~= ARGV[7] then
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
return {e, first, last, cur, cause, woke}
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
/// Returns `{epoch, head, lowest_retained_seq, cause, claimed, owned_by_node, {id, frame, ...}}`.
/// When the epoch is not the caller's, the entries start at the lowest retained seq.
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
  redis.call('PEXPIRE', meta, ARGV[7])
  redis.call('PEXPIRE', log, ARGV[7])
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
return {e, s, lo, cause, claimed, mine, entries}
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

pub(crate) struct Scripts {
    pub(crate) append: Script,
    pub(crate) sync: Script,
    pub(crate) release: Script,
    pub(crate) restore: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            append: Script::new(&format!("{FENCE}{APPEND}")),
            sync: Script::new(&format!("{FENCE}{SYNC}")),
            release: Script::new(RELEASE),
            restore: Script::new(RESTORE),
        }
    }
}
