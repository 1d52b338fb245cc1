-- summary.json of a search run, read in pieces. A sweep of 100,000 trials writes a file
-- of hundreds of MB: decoded whole, it takes gigabytes. The file is scanned in chunks
-- for its top-level "trials" array; each element is decoded on its own and only what
-- the report reads of a trial is kept (M.keep); the rest of the file (the baseline,
-- knobs, objective ...) is decoded as a whole, with an empty trials array in place.
local cjson = require("cjson")

local M = {}

-- Bytes read at a time (a field so the tests can make elements straddle chunks).
M.CHUNK = 1 << 20
local QUOTE, OPEN_ARRAY = 34, 91
local OPENS = { [123] = true, [91] = true } -- { [

-- The metrics of a trial the report reads (trials table, plots, main effects).
M.METRICS = { "p50_latency_ms", "p95_latency_ms", "tokens_per_s", "joules_per_output_token" }
-- ... and of its server metrics (the report's "What the server saw" per trial)
M.SERVER = { "preemptions", "kv_cache_usage_max", "requests_waiting_max", "prefix_cache_queries", "prefix_cache_hits" }

local function slim_server(srv)
  if type(srv) ~= "table" then return nil end
  local out, any = {}, false
  for _, k in ipairs(M.SERVER) do
    if srv[k] ~= cjson.null then out[k], any = srv[k], true end
  end
  return any and out or nil
end

-- What the report keeps of a trial entry: its identity, validity, error and the few
-- metrics it shows; repeats only when asked (the best's entry is kept whole anyway).
-- Fields that are null or false stay out (the report reads them as absent), so a
-- trial is a table of a few slots: 100,000 of them fit in tens of MB.
function M.keep(t, metric_names, with_repeats)
  local metrics = t.metrics
  if type(metrics) == "table" then
    metrics = {}
    for _, k in ipairs(metric_names) do metrics[k] = t.metrics[k] end
    metrics.server = slim_server(t.metrics.server)
  end
  local kept = { trial = t.trial, knob_mask = t.knob_mask, valid = t.valid, error_rate = t.error_rate, metrics = metrics }
  if t.error ~= cjson.null then kept.error = t.error end
  if t.resumed ~= false then kept.resumed = t.resumed end
  kept.kind = t.kind
  if type(t.suspect) == "table" then kept.suspect = t.suspect end
  if with_repeats then kept.repeats = t.repeats end
  return kept
end

-- The end of the JSON string starting at s (its closing quote), nil when the buffer
-- ends first.
local function string_end(buf, s)
  local i = s + 1
  while true do
    local e = buf:find('["\\]', i)
    if not e then return nil end
    if buf:byte(e) == QUOTE then return e end
    i = e + 2 -- the escaped character
  end
end

-- The next chunk of the file appended to the buffer, which first drops what is no
-- longer needed: before pos and before the element being read. The text outside the
-- trials (from head_from) moves to r.head in pieces, so no text is copied twice. false
-- at the end of the file.
local function more(r)
  local chunk = r.file:read(M.CHUNK)
  if not chunk then return false end
  local keep = math.min(r.pos, r.element or r.pos)
  if r.head_from then
    r.head[#r.head + 1] = r.buf:sub(r.head_from, keep - 1)
    r.head_from = keep
  end
  if keep > 1 then
    r.buf = r.buf:sub(keep)
    r.pos = r.pos - keep + 1
    if r.head_from then r.head_from = 1 end
    if r.element then r.element = r.element - keep + 1 end
  end
  r.buf = r.buf .. chunk
  return true
end

-- The layout knobengine writes (pretty, 2-space indent): an element opened at the start
-- of a line ends at the first line holding that indent and "}". The text up to there is
-- the element exactly when it decodes (a shorter or a longer one does not), so this only
-- saves walking its strings; any other layout falls back to the walk. Returns where the
-- element ends, nil when it was not taken.
local function whole_element(r, s)
  local buf, i = r.buf, s - 1
  while i > 0 and buf:byte(i) == 32 do i = i - 1 end
  if buf:byte(i) ~= 10 then return nil end
  local closer = "\n" .. buf:sub(i + 1, s - 1) .. "}"
  local e = buf:find(closer, s, true)
  if not e then return nil end
  local stop = e + #closer - 1
  if not r.take(buf:sub(s, stop)) then r.fast = false; return nil end
  return stop
end

-- An opening bracket at s: the trials array starts (the head so far is handed to
-- on_head, closed so it decodes), or an element of it. Returns where to go on.
local function opened(r, s)
  if r.depth == 1 and r.buf:byte(s) == OPEN_ARRAY and r.last_key == "trials" and not r.trials_done then
    r.head[#r.head + 1] = r.buf:sub(r.head_from, s)
    r.head_from, r.in_trials = nil, true
    r.on_head(table.concat(r.head) .. "]}")
  elseif r.in_trials and r.depth == 2 then
    local stop = r.fast and whole_element(r, s)
    if stop then return stop + 1 end
    r.element = s
  end
  r.depth = r.depth + 1
  return s + 1
end

local function closed(r, s)
  r.depth = r.depth - 1
  if r.in_trials and r.depth == 2 and r.element then
    if not r.take(r.buf:sub(r.element, s)) then error(M, 0) end -- this module as the marker: not JSON
    r.element = nil
  elseif r.in_trials and r.depth == 1 then
    r.in_trials, r.trials_done, r.head_from = false, true, s
  end
end

-- Walks the file's brackets and strings (their content skipped); returns the file's
-- text without the trials' elements, or nil when it ends inside a value.
local function scan(r)
  while true do
    local s = r.buf:find('[%[%]{}"]', r.pos)
    if not s then
      r.pos = #r.buf + 1
      if not more(r) then break end
    elseif r.buf:byte(s) == QUOTE then
      local e = string_end(r.buf, s)
      if e then
        -- the last string at depth 1 before a value that opens is that value's key
        if r.depth == 1 then r.last_key = r.buf:sub(s + 1, e - 1) end
        r.pos = e + 1
      else
        r.pos = s
        if not more(r) then return nil end
      end
    elseif OPENS[r.buf:byte(s)] then
      r.pos = opened(r, s)
    else
      closed(r, s)
      r.pos = s + 1
    end
  end
  if r.depth ~= 0 or r.in_trials then return nil end
  r.head[#r.head + 1] = r.buf:sub(r.head_from or 1)
  return table.concat(r.head)
end

-- The summary in path: its table with trials holding M.keep's entries (the best's
-- entry whole), or nil when the file is absent or not JSON.
function M.read(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local r = { file = file, buf = "", pos = 1, head_from = 1, depth = 0, head = {}, fast = true }
  local trials, names, best_index = {}, M.METRICS, nil
  function r.on_head(text)
    local ok, head = pcall(cjson.decode, text)
    if not ok or type(head) ~= "table" then return end
    best_index = type(head.best_trial) == "number" and head.best_trial or nil
    local metric = type(head.objective) == "table" and head.objective.metric
    if type(metric) == "string" then names = { M.METRICS[1], M.METRICS[2], M.METRICS[3], M.METRICS[4], metric } end
  end
  function r.take(text)
    local ok, t = pcall(cjson.decode, text)
    if not ok or type(t) ~= "table" then return false end
    trials[#trials + 1] = (best_index and t.trial == best_index) and t or M.keep(t, names, best_index == nil)
    return true
  end
  -- each element decoded whole is garbage at once: collected young, it never piles up
  local gc_mode = collectgarbage("generational")
  local ok, rest = pcall(scan, r)
  collectgarbage(gc_mode)
  file:close()
  if not ok then
    if rest == M then return nil end
    error(rest, 0) -- an interrupt, or out of memory
  end
  local decoded, summary = pcall(cjson.decode, rest or "")
  if not rest or not decoded or type(summary) ~= "table" then return nil end
  if r.trials_done then summary.trials = trials end
  return summary
end

return M
