-- Bayesian optimization over the discrete knob space: a few dozen launches instead of
-- every combination.
--
-- Method. The surrogate is a Gaussian process on z = log(objective value) (negated when
-- the objective is maximised, so z is always minimised): constant mean (the mean of the
-- observations), a categorical kernel k(x, y) = s2 * exp(-theta * h(x, y)) where h is
-- the Hamming distance between the value indices of x and y (the number of knobs set
-- differently), and a noise term s2 * eta. theta and eta are chosen on a small grid by
-- the marginal likelihood; s2 in closed form. Since exp(-theta*h) = prod over knobs of
-- exp(-theta*[x_i ~= y_i]), a small theta behaves like an additive model of the knob
-- effects and a larger one lets pairs and higher orders interact.
-- Each step evaluates the candidate with the highest expected improvement (EI, in log
-- units: a relative improvement) over the best posterior mean of an observed mask,
-- times its probability of being feasible. Candidates: every untried mask when the
-- space has at most 4096 of them, else a seeded sample of 2048 plus every single-knob
-- neighbour of the best so far. A mask is never evaluated twice.
-- Feasibility: launches that fail are kept out of the GP (they have no metric to fit)
-- and feed a culprit model instead: a failure is blamed on one setting or one pair of
-- settings it contains (knob i = a, or knob i = a with knob j = b) that no successful
-- trial contains; a candidate containing k of a failure's c suspects fails with
-- probability k / c (the highest over the failures). So masks like the failed ones are
-- avoided, and a conflicting pair is pinned down after a few successes clear the rest.
-- Initial design: all-off (mask 0) and init-1 spread points (each knob's values used
-- evenly across them; the best of 64 seeded draws by the smallest Hamming distance).
-- Stop: when the budget is spent, no candidate is left, or the best EI falls below
-- min_improvement.
--
-- Options: budget (launches; default 3 per knob value beyond the first, i.e. 3N for on/off
-- knobs, at least init + 1, at most the number of masks), init (initial design size,
-- default N/2 + 1 per value as above, at least 2), seed (the design and sample; runs
-- are reproducible), min_improvement (relative EI under which the search stops).
-- run() returns { predict = function(mask) -> the posterior mean in the metric's units }.

local ENUMERATE_MAX = 4096 -- spaces up to this size: every mask is a candidate
local SAMPLE = 2048        -- else: this many seeded random masks (plus neighbours of the best)
local THETAS = { 0.03, 0.08, 0.2, 0.45, 1.0, 2.0 }
local ETAS = { 0.002, 0.01, 0.04, 0.15, 0.5 }
local S2_FLOOR = 1e-6      -- a GP of one point (or of equal values) still has some spread

-- A small deterministic generator (xorshift64*), independent of math.random's state.
local function new_rng(seed)
  local s = (seed * 2654435761 + 88172645463325252) & 0x7fffffffffffffff
  if s == 0 then s = 1 end
  local r = {}
  function r.unit()
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    return ((s >> 11) & ((1 << 52) - 1)) / (1 << 52)
  end
  function r.int(n) return math.floor(r.unit() * n) end
  return r
end

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

-- Cholesky factor (lower, rows as tables) of the n x n matrix A; nil when not positive.
local function cholesky(A, n)
  local L = {}
  for i = 1, n do
    local Li, Ai = {}, A[i]
    L[i] = Li
    for j = 1, i do
      local Lj, s = L[j], Ai[j]
      for k = 1, j - 1 do s = s - Li[k] * Lj[k] end
      if i == j then
        if s <= 0 then return nil end
        Li[i] = math.sqrt(s)
      else
        Li[j] = s / Lj[j]
      end
    end
  end
  return L
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

-- One GP fit for given theta and eta: the model and its log marginal likelihood
-- (s2 profiled out), or nil when the matrix is not positive definite.
local function gp_try(H, r, m, theta, eta, nk)
  local kt = {}
  for h = 0, nk do kt[h] = math.exp(-theta * h) end
  local K = {}
  for i = 1, m do
    local Ki, Hi = {}, H[i]
    for j = 1, m do Ki[j] = kt[Hi[j]] end
    Ki[i] = 1 + eta
    K[i] = Ki
  end
  local L = cholesky(K, m)
  if not L then return nil end
  local alpha = backward(L, forward(L, r, m), m)
  local q = 0
  for i = 1, m do q = q + r[i] * alpha[i] end
  local s2 = math.max(q / m, S2_FLOOR)
  local logdet = 0
  for i = 1, m do logdet = logdet + math.log(L[i][i]) end
  return { kt = kt, L = L, alpha = alpha, s2 = s2, theta = theta, eta = eta }, -0.5 * m * math.log(s2) - logdet
end

-- The GP on the valid observations X (digit lists) and z, hyperparameters by the
-- marginal likelihood over the grid. nil without observations.
local function gp_fit(X, z, nk)
  local m = #z
  if m == 0 then return nil end
  local mean = 0
  for i = 1, m do mean = mean + z[i] end
  mean = mean / m
  local H, r = {}, {}
  for i = 1, m do
    H[i], r[i] = {}, z[i] - mean
    for j = 1, m do H[i][j] = hamming(X[i], X[j], nk) end
  end
  local best, best_ll
  for _, theta in ipairs(THETAS) do
    for _, eta in ipairs(ETAS) do
      local model, ll = gp_try(H, r, m, theta, eta, nk)
      if model and (not best_ll or ll > best_ll) then best, best_ll = model, ll end
    end
  end
  best.mean, best.m, best.H = mean, m, H
  return best
end

-- Posterior mean and (latent, noise-free) standard deviation at a point whose Hamming
-- distances to the observations are dist[1..m].
local function gp_mean(model, dist)
  local mu, kt, alpha = model.mean, model.kt, model.alpha
  for j = 1, model.m do mu = mu + kt[dist[j]] * alpha[j] end
  return mu
end

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
  local j, n = #self.X, self.search.n
  for c, d in ipairs(self.digits) do self.dist[c][j] = hamming(d, x, n) end
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

-- The untried candidate with the highest EI x P(feasible), and that value. EI grows
-- with the standard deviation, so EI at the prior's is an upper bound: candidates are
-- taken by that bound and the exact (costlier) EI stops once the bound cannot win.
local function next_candidate(cands, model, feas)
  local _, best_mu = incumbent(model)
  local sd0, order, bound, pf = math.sqrt(model.s2), {}, {}, {}
  for c = 1, #cands.mask do
    if cands.alive[c] then
      pf[c] = feas:p_feasible(cands.digits[c])
      bound[c] = expected_improvement(gp_mean(model, cands.dist[c]), sd0, best_mu) * pf[c]
      order[#order + 1] = c
    end
  end
  table.sort(order, function(a, b) return bound[a] > bound[b] or (bound[a] == bound[b] and a < b) end)
  local pick, pick_ei = nil, -1
  for _, c in ipairs(order) do
    if bound[c] <= pick_ei then break end
    local dist = cands.dist[c]
    local ei = expected_improvement(gp_mean(model, dist), gp_sd(model, dist), best_mu) * pf[c]
    if ei > pick_ei then pick, pick_ei = c, ei end
  end
  return pick and cands.mask[pick], pick_ei
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
  local st = { search = search, metric = obj.metric, sign = obj.maximize and -1 or 1, X = {}, z = {},
    tried = {}, launches = 0, feas = Feasibility.new(search.n) }
  st.cands = initial_candidates(search, rng, st.X)
  return st
end

-- Evaluates a mask and files its result: the GP gets valid trials with a positive
-- metric, the failure model gets the failures (and the successes that clear suspects).
local function observe(st, mask)
  local search = st.search
  st.tried[mask], st.launches = true, st.launches + 1
  st.cands:remove(mask)
  local result = search:evaluate(mask)
  local d = search:digits(mask)
  local v = result[st.metric]
  if result.valid then
    st.feas:add_valid(d)
    if type(v) == "number" and v > 0 and v == v then
      st.X[#st.X + 1], st.z[#st.z + 1] = d, st.sign * math.log(v)
      st.cands:observe(d)
    end
  else
    st.feas:add_failure(d)
  end
  return result
end

-- In a large space, the single-knob neighbours of the best observed mask join the
-- candidates (a sample alone would rarely hold the one next step).
local function add_neighbours(st, model)
  local search = st.search
  if search.size <= ENUMERATE_MAX or not model then return end
  local best = search:mask(st.X[incumbent(model)])
  for i = 1, search.n do
    for v = 0, search.knobs[i].size - 1 do
      local m = search:with(best, i, v)
      if not st.tried[m] then st.cands:add(m) end
    end
  end
end

-- The surrogate as a predictor in the metric's units (nil without observations).
local function predictor(st)
  local model = gp_fit(st.X, st.z, st.search.n)
  return function(mask)
    if not model then return nil end
    local d, dist = st.search:digits(mask), {}
    for j, x in ipairs(st.X) do dist[j] = hamming(d, x, st.search.n) end
    return math.exp(st.sign * gp_mean(model, dist))
  end
end

return {
  name = "bayes",
  options = {
    budget = { type = "integer", min = 1, doc = "launches at most (default 3 per knob value beyond the first: 3N for on/off knobs)" },
    init = { type = "integer", min = 1, doc = "initial design size, all-off included (default N/2 + 1)" },
    seed = { type = "integer", default = 1, doc = "seed of the initial design and of the candidate sample" },
    min_improvement = { type = "number", min = 0, default = 0.001,
      doc = "stop when the best expected relative improvement is below this" },
  },
  run = function(search)
    local opts = search.options or {}
    local rng = new_rng(opts.seed or 1)
    local budget, init = plan(search, opts)
    local st = new_state(search, rng)
    for _, mask in ipairs(initial_design(search, init, rng)) do
      if not st.tried[mask] and st.launches < budget then observe(st, mask) end
    end
    while st.launches < budget do
      local model = gp_fit(st.X, st.z, search.n)
      add_neighbours(st, model)
      local mask, ei
      if model then mask, ei = next_candidate(st.cands, model, st.feas)
      else mask = most_feasible(st.cands, st.feas) end
      if not mask then break end -- every candidate tried
      if model and ei < (opts.min_improvement or 0.001) then break end
      observe(st, mask)
    end
    return { predict = predictor(st) }
  end,
}
