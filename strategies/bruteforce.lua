-- Brute force: every knob combination once, in ascending mask order (2^N launches for
-- N on/off knobs; the product of the value counts with knobs with values).
return {
  name = "bruteforce",
  exhaustive = true,
  run = function(search)
    for mask in search:masks() do
      search:evaluate(mask)
    end
  end,
}
