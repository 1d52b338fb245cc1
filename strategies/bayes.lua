-- Bayesian optimization over the discrete knob space: a few dozen launches instead of
-- every combination.
--
-- Surrogate: a Gaussian process on z = log(objective value), negated when the objective
-- is maximised (z is always minimised; log, because knobs act as factors on latency
-- and throughput). Constant mean (the mean of the observations), noise s2 * eta, and a
-- categorical kernel on the value indices: with m(x, y) the number of knobs set alike,
--   k(x, y) = s2 * sum over orders o = 1..3 of w_o * C(m, o) / C(N, o),
-- the ANOVA kernel: order 1 is an additive model of the knob effects, order 2 lets
-- pairs of knobs interact, order 3 triples. The shape (w_1, w_2, w_3) and eta are
-- chosen on a small grid by the marginal likelihood, s2 in closed form. The shapes keep
-- at least a quarter of the weight on interactions: with a few dozen points the
-- likelihood prefers a purely additive model, whose overconfidence stopped the search
-- before it found the optimum.
-- Acquisition: expected improvement (EI, in log units: a relative improvement) below
-- the best posterior mean of an observed mask, times the candidate's probability of
-- launching. Candidates: every untried mask when the space has at most 4096, else a
-- seeded sample of 2048 plus every single-knob neighbour of the best so far. A mask is
-- never evaluated twice.
-- Feasibility: failed launches are kept out of the GP (they have no metric to fit) and
-- feed a culprit model instead. A failure is blamed on one setting or one pair of
-- settings it contains (knob i = a, or knob i = a with knob j = b) that no successful
-- trial contains (its suspects); failures sharing suspects are taken to have one cause
-- among the shared ones. A candidate holding k of a group's c suspects fails with
-- probability k / c (the highest over the groups): masks like the failed ones are
-- avoided, and a conflicting pair is pinned down once successes clear the rest.
-- Initial design: all-off (mask 0) and init-1 spread points (each knob's values used
-- evenly across them; the best of 64 seeded draws by the smallest Hamming distance).
-- Stop: the budget is spent, no candidate is left, or (with 3 or more observations)
-- the best EI is below min_improvement.
--
-- Options: budget (launches; default 3 per knob value beyond the first: 3N for on/off
-- knobs; at least init + 1, at most the number of masks), init (initial design size,
-- default half that count + 1), seed (the design and the sample: runs are reproducible),
-- min_improvement (the relative EI under which the search stops).
-- run() returns { predict = function(mask) -> the posterior mean in the metric's units }.

local ENUMERATE_MAX = 4096 -- spaces up to this size: every mask is a candidate
local SAMPLE = 2048        -- else: this many seeded random masks (plus neighbours of the best)
-- Kernel shapes: weights of the main effects, the pairs and the triples of knobs
-- (the ANOVA kernel: sum over orders k of w_k * C(m, k) / C(N, k), m matching knobs).
local SHAPES = { { 0.75, 0.25, 0 }, { 0.55, 0.45, 0 }, { 0.35, 0.65, 0 },
  { 0.6, 0.3, 0.1 }, { 0.4, 0.4, 0.2 } }
local ETAS = { 0.002, 0.01, 0.04, 0.15, 0.5 }
local S2_FLOOR = 1e-4      -- a GP of one point (or of equal values) still has a 1% spread
local STOP_AFTER = 3       -- observations before the EI can stop the search

-- The engine's deterministic generator (xorshift64*), independent of math.random.
local function new_rng(seed) return require("knobengine.rng").new(seed) end

-- The standard normal density and distribution (erfc: Numerical Recipes, error < 1.2e-7).
local function norm_pdf(u) return math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi) end

local function norm_cdf(u)
  local x = -u / math.sqrt(2)
  local a = math.abs(x)
  local t = 1 / (1 + 0.5 * a)
  local r = t * math.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
    + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
    + t * (-0.82215223 + t * 0.17087277)))))))))
  return 0.5 * (x >= 0 and r or 2 - r)
end

-- Expected improvement below `best` of a normal(mu, sd) value.
local function expected_improvement(mu, sd, best)
  local d = best - mu
  if sd < 1e-12 then return math.max(d, 0) end
  local u = d / sd
  return d * norm_cdf(u) + sd * norm_pdf(u)
end

-- Solves L y = b (forward) and L^T x = y (backward).
local function forward(L, b, n)
  local y = {}
  for i = 1, n do
    local Li, s = L[i], b[i]
    for k = 1, i - 1 do s = s - Li[k] * y[k] end
    y[i] = s / Li[i]
  end
  return y
end

local function backward(L, y, n)
  local x = {}
  for i = n, 1, -1 do
    local s = y[i]
    for k = i + 1, n do s = s - L[k][i] * x[k] end
    x[i] = s / L[i][i]
  end
  return x
end

local function hamming(a, b, n)
  local h = 0
  for i = 1, n do if a[i] ~= b[i] then h = h + 1 end end
  return h
end

local function choose(n, k)
  local c = 1
  for i = 1, k do c = c * (n - k + i) / i end
  return c
end

-- The kernel as a function of the Hamming distance h = 0..nk, for a shape.
local function kernel_table(shape, nk)
  local kt, total = {}, 0
  for k = 1, 3 do if k <= nk then total = total + shape[k] end end
  for h = 0, nk do
    local v = 0
    for k = 1, math.min(3, nk) do v = v + shape[k] * choose(nk - h, k) / choose(nk, k) end
    kt[h] = v / total
  end
  return kt
end

-- The surrogate: the valid observations (digit lists X, values z), their Hamming
-- distances H, and for each point of the hyperparameter grid (kernel shape x eta) the
-- Cholesky factor of its kernel matrix, grown by a row per observation (O(m^2) each,
-- instead of refactorising every grid point at every step).
local Surrogate = {}
Surrogate.__index = Surrogate

function Surrogate.new(nk)
  local self = setmetatable({ nk = nk, X = {}, z = {}, H = {}, grid = {} }, Surrogate)
  for _, shape in ipairs(SHAPES) do
    local kt = kernel_table(shape, nk)
    for _, eta in ipairs(ETAS) do
      self.grid[#self.grid + 1] = { shape = shape, kt = kt, eta = eta, L = {}, logdet = 0 }
    end
  end
  return self
end

function Surrogate:add(x, z)
  local m = #self.X + 1
  self.X[m], self.z[m] = x, z
  local row = {}
  for j = 1, m - 1 do
    row[j] = hamming(x, self.X[j], self.nk)
    self.H[j][m] = row[j]
  end
  row[m], self.H[m] = 0, row
  for _, g in ipairs(self.grid) do
    if g.L then
      local k = {}
      for j = 1, m - 1 do k[j] = g.kt[row[j]] end
      local y = forward(g.L, k, m - 1)
      local s = 1 + g.eta
      for j = 1, m - 1 do s = s - y[j] * y[j] end
      if s <= 0 then g.L = nil -- not positive definite (rounding): drop this grid point
      else y[m], g.L[m], g.logdet = math.sqrt(s), y, g.logdet + 0.5 * math.log(s) end
    end
  end
end

-- The model at the grid point of the highest marginal likelihood (s2 profiled out):
-- kt, L, alpha = K^-1 (z - mean), s2, eta, mean, m, H. nil without observations.
function Surrogate:fit()
  local m, z = #self.z, self.z
  if m == 0 then return nil end
  local mean, r = 0, {}
  for i = 1, m do mean = mean + z[i] end
  mean = mean / m
  for i = 1, m do r[i] = z[i] - mean end
  local best, best_ll
  for _, g in ipairs(self.grid) do
    if g.L then
      local alpha = backward(g.L, forward(g.L, r, m), m)
      local q = 0
      for i = 1, m do q = q + r[i] * alpha[i] end
      local s2 = math.max(q / m, S2_FLOOR)
      local ll = -0.5 * m * math.log(s2) - g.logdet
      if not best_ll or ll > best_ll then
        best_ll = ll
        best = { kt = g.kt, L = g.L, alpha = alpha, s2 = s2, eta = g.eta, shape = g.shape, mean = mean, m = m, H = self.H }
      end
    end
  end
  return best
end

-- Posterior mean at a point whose Hamming distances to the observations are
-- dist[1..m]; also its two largest kernel values to them, and which (for sd_bound).
local function gp_mean(model, dist)
  local mu, kt, alpha, a, b, ja, jb = model.mean, model.kt, model.alpha, -1, -1, nil, nil
  for j = 1, model.m do
    local k = kt[dist[j]]
    mu = mu + k * alpha[j]
    if k > a then a, b, ja, jb = k, a, j, ja elseif k > b then b, jb = k, j end
  end
  return mu, a, b, ja, jb
end

-- A cheap upper bound of the posterior sd: the sd given only the two observations
-- most correlated with the point (kernel values a, b), which is at least the sd given all.
local function sd_bound(model, a, b, ja, jb)
  local e = 1 + model.eta
  if not jb then return math.sqrt(math.max(model.s2 * (1 - a * a / e), 0)) end
  local c = model.kt[model.H[ja][jb]]
  local q = (e * (a * a + b * b) - 2 * c * a * b) / (e * e - c * c)
  return math.sqrt(math.max(model.s2 * (1 - q), 0))
end

-- The posterior (latent, noise-free) standard deviation there.
local function gp_sd(model, dist)
  local k, kt = {}, model.kt
  for j = 1, model.m do k[j] = kt[dist[j]] end
  local v = forward(model.L, k, model.m)
  local vv = 0
  for j = 1, model.m do vv = vv + v[j] * v[j] end
  return math.sqrt(math.max(model.s2 * (1 - vv), 0))
end

-- The culprit model of failures (see the header). Suspects: {i, a} or {i, a, j, b}.
local Feasibility = {}
Feasibility.__index = Feasibility

local function single_key(i, a) return (i << 6) | a end
local function pair_key(i, a, j, b) return (1 << 40) | (single_key(i, a) << 16) | single_key(j, b) end

local function contains(d, c) return d[c[1]] == c[2] and (not c[3] or d[c[3]] == c[4]) end

function Feasibility.new(n) return setmetatable({ n = n, cleared = {}, groups = {} }, Feasibility) end

-- Drops the suspects for which keep(c) is false.
local function filter(suspects, keep)
  for k = #suspects, 1, -1 do
    if not keep(suspects[k]) then table.remove(suspects, k) end
  end
end

-- A successful trial clears every setting and pair of settings it contains.
function Feasibility:add_valid(d)
  local n = self.n
  for i = 1, n do
    self.cleared[single_key(i, d[i])] = true
    for j = i + 1, n do self.cleared[pair_key(i, d[i], j, d[j])] = true end
  end
  for _, group in ipairs(self.groups) do filter(group, function(c) return not contains(d, c) end) end
end

-- A failure's suspects: its settings and pairs that no successful trial has. Failures
-- that share suspects are taken to have one cause among the shared ones (a group);
-- one that shares none with any group starts a group of its own.
function Feasibility:add_failure(d)
  local suspects, n = {}, self.n
  for i = 1, n do
    if not self.cleared[single_key(i, d[i])] then suspects[#suspects + 1] = { i, d[i] } end
    for j = i + 1, n do
      if not self.cleared[pair_key(i, d[i], j, d[j])] then suspects[#suspects + 1] = { i, d[i], j, d[j] } end
    end
  end
  if #suspects == 0 then return end -- every part of it ran fine elsewhere: a fluke
  for _, group in ipairs(self.groups) do
    local shared = 0
    for _, c in ipairs(group) do if contains(d, c) then shared = shared + 1 end end
    if shared > 0 then
      filter(group, function(c) return contains(d, c) end)
      return
    end
  end
  self.groups[#self.groups + 1] = suspects
end

-- The probability that the mask with digits d launches: one minus the largest share
-- of a group's suspects it contains.
function Feasibility:p_feasible(d)
  local worst = 0
  for _, group in ipairs(self.groups) do
    if #group > 0 then
      local hit = 0
      for _, c in ipairs(group) do if contains(d, c) then hit = hit + 1 end end
      worst = math.max(worst, hit / #group)
    end
  end
  return 1 - worst
end

-- The candidate masks: digits and their Hamming distances to each valid observation.
local Candidates = {}
Candidates.__index = Candidates

function Candidates.new(search, X)
  return setmetatable({ search = search, X = X, mask = {}, digits = {}, dist = {}, alive = {}, index = {} }, Candidates)
end

function Candidates:add(mask)
  if self.index[mask] then return end
  local c = #self.mask + 1
  local d = self.search:digits(mask)
  self.mask[c], self.digits[c], self.index[mask], self.alive[c] = mask, d, c, true
  local dist = {}
  for j, x in ipairs(self.X) do dist[j] = hamming(d, x, self.search.n) end
  self.dist[c] = dist
end

-- A new valid observation x (already appended to X): one more distance per candidate.
function Candidates:observe(x)
  local j, n, dist = #self.X, self.search.n, self.dist
  for c, d in ipairs(self.digits) do
    local h = 0 -- hamming(d, x, n), inlined: this loop runs over every candidate
    for i = 1, n do if d[i] ~= x[i] then h = h + 1 end end
    dist[c][j] = h
  end
end

function Candidates:remove(mask)
  local c = self.index[mask]
  if c then self.alive[c] = false end
end

-- Every mask, or a seeded sample of a large space.
local function initial_candidates(search, rng, X)
  local cands = Candidates.new(search, X)
  if search.size <= ENUMERATE_MAX then
    for mask in search:masks() do cands:add(mask) end
    return cands
  end
  for _ = 1, SAMPLE do
    local d = {}
    for i = 1, search.n do d[i] = rng.int(search.knobs[i].size) end
    cands:add(search:mask(d))
  end
  return cands
end

-- The smallest and the summed pairwise Hamming distance of a design.
local function spread(design, n)
  local low, sum = math.huge, 0
  for a = 1, #design do
    for b = a + 1, #design do
      local h = hamming(design[a], design[b], n)
      low, sum = math.min(low, h), sum + h
    end
  end
  return low, sum
end

-- All-off plus count-1 points with each knob's values used evenly (a shuffled cycle),
-- the best of 64 draws by the smallest distance, then the summed distance.
local function initial_design(search, count, rng)
  local n, best, best_low, best_sum = search.n, nil, -1, -1
  for _ = 1, 64 do
    local design = { {} }
    for i = 1, n do design[1][i] = 0 end
    for p = 2, count do design[p] = {} end
    for i = 1, n do
      local r, start = search.knobs[i].size, rng.int(search.knobs[i].size)
      local column = {}
      for p = 2, count do column[p - 1] = (start + p) % r end
      for k = #column, 2, -1 do -- Fisher-Yates
        local s = rng.int(k) + 1
        column[k], column[s] = column[s], column[k]
      end
      for p = 2, count do design[p][i] = column[p - 1] end
    end
    local low, sum = spread(design, n)
    if low > best_low or (low == best_low and sum > best_sum) then best, best_low, best_sum = design, low, sum end
  end
  local masks = {}
  for p, d in ipairs(best) do masks[p] = search:mask(d) end
  return masks
end

-- The index of the best observed mask by posterior mean, and that mean.
local function incumbent(model)
  local best_j, best_mu
  for j = 1, model.m do
    local mu = gp_mean(model, model.H[j])
    if not best_mu or mu < best_mu then best_j, best_mu = j, mu end
  end
  return best_j, best_mu
end

-- The untried candidate with the highest EI x P(feasible) below the incumbent, and
-- that value. The exact EI needs a triangular solve per candidate; EI grows with the
-- sd, so EI at sd_bound is an upper bound, and candidates taken in its order stop as
-- soon as the bound cannot beat the best exact EI (most of them are never solved).
local function next_candidate(cands, model, feas)
  local _, target = incumbent(model)
  local mu, bound, pf, top = {}, {}, {}, nil
  for c = 1, #cands.mask do
    if cands.alive[c] then
      local a, b, ja, jb
      mu[c], a, b, ja, jb = gp_mean(model, cands.dist[c])
      pf[c] = feas:p_feasible(cands.digits[c])
      bound[c] = expected_improvement(mu[c], sd_bound(model, a, b, ja, jb), target) * pf[c]
      if not top or bound[c] > bound[top] then top = c end
    end
  end
  if not top then return nil end
  local pick, pick_ei = nil, -1
  local function try(c)
    local ei = expected_improvement(mu[c], gp_sd(model, cands.dist[c]), target) * pf[c]
    if ei > pick_ei or (ei == pick_ei and c < pick) then pick, pick_ei = c, ei end
  end
  try(top) -- the likeliest winner first: its EI rules most of the others out unsorted
  local order = {}
  for c = 1, #cands.mask do
    if cands.alive[c] and c ~= top and bound[c] > pick_ei then order[#order + 1] = c end
  end
  table.sort(order, function(a, b) return bound[a] > bound[b] or (bound[a] == bound[b] and a < b) end)
  for _, c in ipairs(order) do
    if bound[c] < pick_ei then break end -- no candidate left can win
    try(c)
  end
  return cands.mask[pick], pick_ei
end

-- Without a single valid observation there is nothing to model: the most feasible
-- untried candidate (the first of them on ties).
local function most_feasible(cands, feas)
  local pick, pick_p = nil, -1
  for c = 1, #cands.mask do
    if cands.alive[c] then
      local p = feas:p_feasible(cands.digits[c])
      if p > pick_p then pick, pick_p = c, p end
    end
  end
  return pick and cands.mask[pick]
end

-- Knob values beyond the first, summed: N for on/off knobs.
local function degrees(search)
  local dof = 0
  for i = 1, search.n do dof = dof + search.knobs[i].size - 1 end
  return dof
end

-- The budget and initial design size from the options (see the header).
local function plan(search, opts)
  local dof = degrees(search)
  local init = opts.init or math.max(2, dof // 2 + 1)
  local budget = opts.budget or math.max(3 * dof, init + 1)
  budget = math.min(budget, search.size)
  return budget, math.min(init, budget)
end

-- The state of one search: the observations, the candidates, the failure model.
local function new_state(search, rng)
  local obj = search.objective or { metric = "p50_latency_ms", maximize = false }
  local st = { search = search, metric = obj.metric, sign = obj.maximize and -1 or 1,
    gp = Surrogate.new(search.n), tried = {}, launches = 0, feas = Feasibility.new(search.n) }
  st.cands = initial_candidates(search, rng, st.gp.X)
  return st
end

-- Files a mask's result: the GP gets valid trials with a positive metric, the failure
-- model gets the failures (and the successes that clear suspects).
local function file(st, mask, result)
  local search = st.search
  st.tried[mask], st.launches = true, st.launches + 1
  st.cands:remove(mask)
  local d = search:digits(mask)
  local v = result[st.metric]
  if result.valid then
    st.feas:add_valid(d)
    if type(v) == "number" and v > 0 and v == v then
      st.gp:add(d, st.sign * math.log(v))
      st.cands:observe(d)
    end
  else
    st.feas:add_failure(d)
  end
  return result
end

local function observe(st, mask) return file(st, mask, st.search:evaluate(mask)) end

-- The initial design as one batch (run at once on executor slots).
local function observe_design(st, design, budget)
  local batch, seen = {}, {}
  for _, mask in ipairs(design) do
    if not seen[mask] and #batch < budget then batch[#batch + 1], seen[mask] = mask, true end
  end
  for i, result in ipairs(st.search:evaluate_many(batch)) do file(st, batch[i], result) end
end

-- In a large space, the single-knob neighbours of the best observed mask join the
-- candidates (a sample alone would rarely hold the one next step).
local function add_neighbours(st, model)
  local search = st.search
  if search.size <= ENUMERATE_MAX or not model then return end
  local best = search:mask(st.gp.X[incumbent(model)])
  for i = 1, search.n do
    for v = 0, search.knobs[i].size - 1 do
      local m = search:with(best, i, v)
      if not st.tried[m] then st.cands:add(m) end
    end
  end
end

-- The surrogate as a predictor in the metric's units (nil without observations).
local function predictor(st)
  local model = st.gp:fit()
  return function(mask)
    if not model then return nil end
    local d, dist = st.search:digits(mask), {}
    for j, x in ipairs(st.gp.X) do dist[j] = hamming(d, x, st.search.n) end
    return math.exp(st.sign * gp_mean(model, dist))
  end
end

return {
  name = "bayes",
  order = 5, -- its place in --help's list of bundled strategies
  options = {
    budget = { type = "integer", min = 1, doc = "launches at most (default 3 per knob value beyond the first: 3N for on/off knobs)" },
    init = { type = "integer", min = 1, doc = "initial design size, all-off included (default N/2 + 1)" },
    seed = { type = "integer", default = 1, doc = "seed of the initial design and of the candidate sample" },
    min_improvement = { type = "number", min = 0, default = 0.0003,
      doc = "stop when the best expected relative improvement is below this" },
  },
  run = function(search)
    local opts = search.options or {}
    local rng = new_rng(opts.seed or 1)
    local budget, init = plan(search, opts)
    local st = new_state(search, rng)
    observe_design(st, initial_design(search, init, rng), budget)
    while st.launches < budget do
      local model = st.gp:fit()
      add_neighbours(st, model)
      local mask, ei
      if model then mask, ei = next_candidate(st.cands, model, st.feas)
      else mask = most_feasible(st.cands, st.feas) end
      if not mask then break end -- every candidate tried
      if model and model.m >= STOP_AFTER and ei < (opts.min_improvement or 0.0003) then break end
      observe(st, mask)
    end
    return { predict = predictor(st) }
  end,
}
