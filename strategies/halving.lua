-- Two-stage successive halving: screen every mask with a small request budget, keep the
-- best fraction, confirm the survivors at the full request_count. Screening trials
-- appear in the table but only confirmed trials can be chosen as best.
-- strategy_options: screen_requests (default request_count / 4, at least 1),
-- keep_fraction (default 0.25), min_keep (default 2).
return {
  name = "halving",
  run = function(search)
    local opts = search.options
    local screen = opts.screen_requests or math.max(1, search.request_count // 4)
    local fraction = opts.keep_fraction or 0.25
    local min_keep = opts.min_keep or 2
    local screened = {}
    for mask in search:masks() do
      screened[#screened + 1] = search:evaluate(mask, { requests = screen })
    end
    -- rank the screening results by the objective
    local valid = {}
    for _, r in ipairs(screened) do
      if r.valid then valid[#valid + 1] = r end
    end
    table.sort(valid, function(a, b) return search:better(a, b) end)
    local keep = math.max(min_keep, math.ceil(#screened * fraction))
    local survivors = {}
    for i = 1, math.min(keep, #valid) do survivors[i] = valid[i].mask end
    table.sort(survivors) -- confirm in mask order, so the table reads naturally
    for _, mask in ipairs(survivors) do search:evaluate(mask) end
  end,
}
