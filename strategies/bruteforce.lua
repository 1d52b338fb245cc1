-- Brute force: every knob combination once, in ascending mask order (2^N launches for
-- N on/off knobs; the product of the value counts with knobs with values). The masks go
-- out in batches (at once on every executor slot, when there are several); a batch is
-- bounded so a huge space (--force) never has to be listed whole.
local BATCH = 1024

return {
  name = "bruteforce",
  order = 1, -- its place in --help's list of bundled strategies
  exhaustive = true,
  run = function(search)
    local batch = {}
    for mask in search:masks() do
      batch[#batch + 1] = mask
      if #batch == BATCH then search:evaluate_many(batch); batch = {} end
    end
    if #batch > 0 then search:evaluate_many(batch) end
  end,
}
