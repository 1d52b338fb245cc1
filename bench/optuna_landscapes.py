#!/usr/bin/env python3
"""Optuna's samplers on knobengine's seeded synthetic landscapes, for bench/run.py's
peers section: each (sampler, seed) asks Optuna for up to BUDGET trials, every one
measured by bench/landscape_oracle.lua (the same landscape and noise model that
`bench/search_efficiency.lua --launches` gives knobengine's strategies), and records the first launch
count whose pick (the lowest measured p50 so far) is within 2% of the true optimum.
Runs in the peers' virtual environment (scripts/install-peers.sh):
  build-peers/optuna/bin/python bench/optuna_landscapes.py LUA_HOST SEEDS N BUDGET [R1,R2,...]
Prints one JSON line per sampler: method, reached (per seed, null: not within BUDGET),
distinct (the distinct configurations among those launches: what a caller that skipped
repeats would have paid),
launches (BUDGET: Optuna has no stopping rule of its own), relaunched (per seed, trials
that repeated a configuration already launched) and seconds (the sampler's own time)."""
import json
import os
import subprocess
import sys
import time
import warnings

import optuna

# torch, which GPSampler uses, warns when it finds no usable CUDA driver: it runs on the CPU
warnings.filterwarnings("ignore", message="CUDA initialization")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "bench", "landscape_oracle.lua")


class Oracle:
    def __init__(self, lua_host, n, seed, radices):
        argv = [lua_host, ORACLE, str(n), str(seed)] + ([radices] if radices else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        head = json.loads(self.proc.stdout.readline())
        self.radices, self.optimum = head["radices"], head["optimum_p50"]

    def ask(self, verb, digits):
        self.proc.stdin.write("%s %s\n" % (verb, " ".join(str(d) for d in digits)))
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        return None if answer == "infeasible" else float(answer)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def one_search(make_sampler, lua_host, n, seed, budget, radices):
    oracle = Oracle(lua_host, n, seed, radices)
    study = optuna.create_study(direction="minimize", sampler=make_sampler(seed))
    best, reached, distinct, seen, relaunched, spent = None, None, None, set(), 0, 0.0
    try:
        for k in range(1, budget + 1):
            t0 = time.process_time()
            trial = study.ask()
            digits = [trial.suggest_categorical("k%d" % (i + 1), list(range(r))) for i, r in enumerate(oracle.radices)]
            spent += time.process_time() - t0
            relaunched += tuple(digits) in seen
            seen.add(tuple(digits))
            value = oracle.ask("measure", digits)
            t0 = time.process_time()
            if value is None:  # the server failed to start: a launch that measured nothing
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, value)
                if best is None or value < best[0]:
                    best = (value, digits)
            spent += time.process_time() - t0
            if reached is None and best and oracle.ask("true", best[1]) <= oracle.optimum * 1.02:
                reached, distinct = k, len(seen)
    finally:
        oracle.close()
    return reached, distinct, relaunched, spent


SAMPLERS = {
    "optuna TPE": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "optuna GP": lambda seed: optuna.samplers.GPSampler(seed=seed),
}

if __name__ == "__main__":
    lua_host, seeds, n, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    radices = sys.argv[5] if len(sys.argv) > 5 else None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, make in SAMPLERS.items():
        reached, distinct, relaunched, seconds = [], [], [], 0.0
        for seed in range(1, seeds + 1):
            r, d, dup, spent = one_search(make, lua_host, n, seed, budget, radices)
            reached.append(r)
            distinct.append(d)
            relaunched.append(dup)
            seconds += spent
        print(json.dumps({"method": name, "reached": reached, "distinct": distinct, "launches": [budget] * seeds,
                          "relaunched": relaunched, "seconds": round(seconds, 2)}), flush=True)
