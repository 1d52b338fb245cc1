-- The search history in SQLite (<results>/history.sqlite): every trial of every search
-- run with its resolved config, the config hash, metrics, status and timing.
--
-- A run is identified by the hash of its search identity (identity.lua: every config
-- key that decides a trial's outcome, and the dataset's content).
-- A run that did not finish (interrupted, crashed) is resumed by the next run with the
-- same hash and strategy: its completed trials are replayed from here, in order, instead
-- of being run again, so the table comes out as if the run had never stopped.
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local util = require("knobengine.util")

local M = {}
M.__index = M

local SCHEMA = {
  [[CREATE TABLE IF NOT EXISTS runs (
      id INTEGER PRIMARY KEY, config_hash TEXT NOT NULL, strategy TEXT NOT NULL,
      started_utc TEXT NOT NULL, finished_utc TEXT, status TEXT NOT NULL, run_dir TEXT)]],
  [[CREATE TABLE IF NOT EXISTS trials (
      run_id INTEGER NOT NULL REFERENCES runs(id), trial INTEGER NOT NULL,
      knob_mask TEXT NOT NULL, requests INTEGER NOT NULL, config_hash TEXT NOT NULL,
      status TEXT NOT NULL, valid INTEGER NOT NULL, error TEXT, record TEXT NOT NULL,
      started_utc TEXT NOT NULL, wall_s REAL, PRIMARY KEY (run_id, trial))]],
  -- a trial a resumable executor backend started (executor.lua): the backend (its
  -- executor.type) and the handle it re-attaches by; job_id is the same id as users see
  -- it (a Slurm job id)
  [[CREATE TABLE IF NOT EXISTS jobs (
      run_id INTEGER NOT NULL REFERENCES runs(id), trial INTEGER NOT NULL, job_id TEXT NOT NULL,
      knob_mask TEXT NOT NULL, requests INTEGER NOT NULL, submitted_utc TEXT NOT NULL,
      backend TEXT, handle TEXT, PRIMARY KEY (run_id, trial))]],
}

-- The columns of a table, as a set.
local function columns(db, tbl)
  local set = {}
  for _, c in ipairs(db:rows("PRAGMA table_info(" .. tbl .. ")")) do set[c.name] = true end
  return set
end

-- Tables an older knobengine made, brought to this version's columns. Runs of this
-- version record their identity's version; an older knobengine's (NULL) named fewer
-- keys, so they are never resumed or replayed as this config's. Its jobs table had
-- Slurm job ids only: those rows are the slurm backend's, their handle the job id.
local function migrate(db)
  if not columns(db, "runs").identity then db:exec("ALTER TABLE runs ADD COLUMN identity INTEGER") end
  local jobs = columns(db, "jobs")
  if not jobs.backend then db:exec("ALTER TABLE jobs ADD COLUMN backend TEXT") end
  if not jobs.handle then db:exec("ALTER TABLE jobs ADD COLUMN handle TEXT") end
  db:exec("UPDATE jobs SET backend = 'slurm', handle = job_id WHERE backend IS NULL")
end

local function damaged(path, why, raise)
  raise("%s is damaged or unreadable (%s): move it aside (mv %s %s.damaged) and run again; its finished trials "
    .. "cannot be resumed", path, why, path, path)
end

-- SQLite's codes (luadb.c appends "[SQLITE_NAME]") for a disk that cannot take the
-- write (full, read-only, failing): the file itself is fine.
local DISK_FAILURES = { FULL = true, IOERR = true, READONLY = true, CANTOPEN = true }

-- A database failure: its message (without the code) and whether the disk caused it.
local function cause(why)
  local text = tostring(why)
  local message, code = text:match("^(.-) %[SQLITE_(%u+)%]$")
  return (message or text):gsub("^.-history database: ", ""), DISK_FAILURES[code] == true
end

-- A failure turned into an error that names the file: a disk that cannot take the
-- write is said as such (the run stops resumable), anything else is a damaged file.
local function failed(path, why, raise)
  local message, disk = cause(why)
  if disk then (raise == errors.usage and errors.usage or errors.storage)("cannot write %s (%s)", path, message) end
  damaged(path, message, raise)
end

function M:exec(sql, ...)
  local ok, v = pcall(self.db.exec, self.db, sql, ...)
  if not ok then failed(self.path, v, errors.run) end
  return v
end

function M:rows(sql, ...)
  local ok, v = pcall(self.db.rows, self.db, sql, ...)
  if not ok then failed(self.path, v, errors.run) end
  return v
end

-- Opens (creating) the history; a damaged file is refused before anything runs.
function M.open(path)
  local db, err = knob.db_open(path)
  if not db then damaged(path, err, errors.usage) end
  local self = setmetatable({ db = db, path = path }, M)
  local ok, why = pcall(function()
    local check = db:rows("PRAGMA quick_check")
    if check[1] and check[1].quick_check ~= "ok" then error(check[1].quick_check, 0) end
    for _, sql in ipairs(SCHEMA) do db:exec(sql) end
    migrate(db)
  end)
  if not ok then failed(path, why, errors.usage) end
  return self
end

local function now_utc() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

-- An unfinished run of this strategy recorded by an older knobengine (its identity
-- named fewer keys) is retired (status 'superseded'): a note saying it is not resumed,
-- or nil when there is none.
function M:retire_older_unfinished(strategy)
  local old = self:rows([[SELECT id FROM runs WHERE strategy = ? AND identity IS NULL
      AND status IN ('running', 'interrupted') ORDER BY id DESC LIMIT 1]], strategy)[1]
  if not old then return nil end
  self:exec("UPDATE runs SET status = 'superseded' WHERE identity IS NULL AND status IN ('running', 'interrupted')")
  return string.format("the interrupted search (run %d) in %s was recorded by an older knobengine, whose "
    .. "run identity left out keys that decide the results (arrivals, SLO); it is not resumed, this search starts "
    .. "anew", old.id, self.path)
end

-- Starts a run, or resumes the latest unfinished one with the same hash and strategy.
-- Returns run id and the completed trials to replay (list of records, by trial index).
function M:begin(config_hash, strategy)
  local rows = self:rows(
    "SELECT id FROM runs WHERE config_hash = ? AND strategy = ? ORDER BY id DESC LIMIT 1", config_hash, strategy)
  local last = rows[1]
  if last then
    local status = self:rows("SELECT status FROM runs WHERE id = ?", last.id)[1].status
    if status == "running" or status == "interrupted" then
      local done = {}
      for _, t in ipairs(self:rows(
          "SELECT trial, record FROM trials WHERE run_id = ? AND status IN ('complete', 'failed') ORDER BY trial", last.id)) do
        if t.trial ~= #done then break end -- only an unbroken prefix can be replayed
        done[#done + 1] = cjson.decode(t.record)
      end
      self:exec("DELETE FROM trials WHERE run_id = ? AND trial >= ?", last.id, #done)
      self:exec("UPDATE runs SET status = 'running' WHERE id = ?", last.id)
      return last.id, done
    end
  end
  self:exec("INSERT INTO runs (config_hash, strategy, started_utc, status, identity) VALUES (?, ?, ?, 'running', ?)",
    config_hash, strategy, now_utc(), require("knobengine.identity").VERSION)
  return self:rows("SELECT max(id) AS id FROM runs")[1].id, {}
end

-- Stores a finished trial (record as kept in summary.json).
function M:record(run_id, config_hash, rec, stored)
  self:exec([[INSERT OR REPLACE INTO trials (run_id, trial, knob_mask, requests, config_hash,
      status, valid, error, record, started_utc, wall_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    run_id, rec.trial, rec.mask_string, rec.requests, config_hash, rec.ok and "complete" or "failed",
    rec.valid and 1 or 0, rec.error, cjson.encode(stored), now_utc(), rec.wall_s)
end

function M:mark_trial_interrupted(run_id, config_hash, trial, mask_string, requests)
  self:exec([[INSERT OR REPLACE INTO trials (run_id, trial, knob_mask, requests, config_hash,
      status, valid, record, started_utc) VALUES (?, ?, ?, ?, ?, 'interrupted', 0, '{}', ?)]],
    run_id, trial, mask_string, requests, config_hash, now_utc())
end

-- The trial of a run that a resumable executor backend started, and its handle (for
-- a resume: executor.lua re-attaches to it).
function M:record_job(run_id, trial, backend, handle, mask_string, requests)
  self:exec([[INSERT OR REPLACE INTO jobs (run_id, trial, job_id, knob_mask, requests, submitted_utc, backend, handle)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], run_id, trial, handle, mask_string, requests, now_utc(), backend, handle)
end

function M:forget_jobs(run_id, trials)
  for _, t in ipairs(trials) do self:exec("DELETE FROM jobs WHERE run_id = ? AND trial = ?", run_id, t) end
end

-- {backend, handle, job_id, knob_mask, requests} of a trial's job, or nil.
function M:job_of(run_id, trial)
  return self:rows("SELECT backend, handle, job_id, knob_mask, requests FROM jobs WHERE run_id = ? AND trial = ?",
    run_id, trial)[1]
end

function M:finish(run_id, status, run_dir)
  self:exec("UPDATE runs SET status = ?, finished_utc = ?, run_dir = ? WHERE id = ?", status, now_utc(), run_dir, run_id)
end

-- Every stored trial of every run (for search:history() across runs, and tools).
function M:all_trials()
  return self:rows([[SELECT t.run_id, t.trial, t.knob_mask, t.requests, t.config_hash, t.status,
      t.valid, t.error, t.started_utc, t.wall_s FROM trials t ORDER BY t.run_id, t.trial]])
end

function M:close() self.db:close() end

return M
