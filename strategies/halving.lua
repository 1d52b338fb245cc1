-- Two-stage successive halving: screen every mask with a small request budget, keep the
-- best fraction, confirm the survivors at the full request_count. Screening trials
-- appear in the table but only confirmed trials can be chosen as best.
return {
  name = "halving",
  order = 3, -- its place in --help's list of bundled strategies
  exhaustive = true,
  options = {
    screen_requests = { type = "integer", min = 1, doc = "requests per screening trial (default request_count / 4)" },
    keep_fraction = { type = "number", min = 0, max = 1, default = 0.25, doc = "share of masks confirmed" },
    min_keep = { type = "integer", min = 1, default = 2, doc = "masks confirmed at least" },
  },
  run = function(search)
    local opts = search.options
    local screen = math.min(opts.screen_requests or math.max(1, search.request_count // 4), search.request_count)
    local screened, batch = {}, {}
    local function screen_batch() -- bounded batches: a huge space is never listed whole
      for _, r in ipairs(search:evaluate_many(batch, { requests = screen })) do screened[#screened + 1] = r end
      batch = {}
    end
    for mask in search:masks() do
      batch[#batch + 1] = mask
      if #batch == 1024 then screen_batch() end
    end
    if #batch > 0 then screen_batch() end
    -- rank the screening results by the objective
    local valid = {}
    for _, r in ipairs(screened) do
      if r.valid then valid[#valid + 1] = r end
    end
    table.sort(valid, function(a, b) return search:better(a, b) end)
    local keep = math.max(opts.min_keep, math.ceil(#screened * opts.keep_fraction))
    local survivors = {}
    for i = 1, math.min(keep, #valid) do survivors[i] = valid[i].mask end
    table.sort(survivors) -- confirm in mask order, so the table reads naturally
    search:evaluate_many(survivors)
  end,
}
