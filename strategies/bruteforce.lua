-- Brute force: every knob combination once, in ascending mask order (2^N launches for
-- N on/off knobs; the product of the value counts with knobs with values).
return {
  name = "bruteforce",
  exhaustive = true,
  run = function(search)
    local all = {}
    for mask in search:masks() do all[#all + 1] = mask end
    search:evaluate_many(all) -- on every executor slot at once, when there are several

  end,
}
