-- Brute force: every knob combination once, in ascending binary order (2^N launches).
return {
  name = "bruteforce",
  run = function(search)
    for mask in search:masks() do
      search:evaluate(mask)
    end
  end,
}
