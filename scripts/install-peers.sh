#!/usr/bin/env bash
# Installs the peers that `make bench` measures knobengine against, pinned, from PyPI,
# each into a virtual environment of its own under build-peers/ (ignored by git; the
# tools' dependencies disagree; GuideLLM's and Optuna GP's torch is large):
#   scripts/install-peers.sh           AIPerf, GuideLLM, Optuna (bench/peers.py)
#   scripts/install-peers.sh --llama   also llama-cpp-python's server and gguf, the real
#                                      CPU engine of bench/llama_cpu.py (builds llama.cpp
#                                      from source: about 10 minutes on 2 cores)
#   scripts/install-peers.sh --only-llama   that one alone
# Neither `make demo` nor `make test` needs any of this. Safe to run again: a venv
# that holds these pins and imports is left as it is. KNOB_PEERS_DIR moves build-peers/.
set -euo pipefail
set -f  # the pins are split into words below, never globbed ("llama-cpp-python[server]")
cd "$(dirname "$0")/.."
DIR="${KNOB_PEERS_DIR:-build-peers}"

# name | pinned requirements | the import that proves the venv is whole
PEERS=(
  "aiperf|aiperf==0.13.0|aiperf"
  "guidellm|guidellm==0.8.1|guidellm"
  "optuna|optuna==5.1.0 scipy==1.17.1 torch==2.15.0|optuna, scipy, torch"
)
LLAMA="llama|llama-cpp-python[server]==0.3.36 gguf==0.19.0 numpy==2.4.6|llama_cpp.server, gguf, numpy"

want=("${PEERS[@]}")
for arg in "$@"; do
  case "$arg" in
    --llama) [ "${want[0]}" = "$LLAMA" ] || want+=("$LLAMA") ;;
    --only-llama) want=("$LLAMA") ;;  # before or after --llama: llama once
    *) echo "install-peers.sh: unknown option '$arg' (use --llama or --only-llama)" >&2; exit 2 ;;
  esac
done

command -v python3 >/dev/null || { echo "install-peers.sh: python3 is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
python3 -c 'import venv, ensurepip' 2>/dev/null || {
  echo "install-peers.sh: python3 cannot make virtual environments (Debian: apt-get install python3-venv)" >&2; exit 1; }

for entry in "${want[@]}"; do
  IFS='|' read -r name reqs probe <<<"$entry"
  venv="$DIR/$name"
  # whole when it records these very pins (written last) and its packages import
  if [ "$(cat "$venv/.pins" 2>/dev/null)" = "$reqs" ] && "$venv/bin/python" -c "import $probe" 2>/dev/null; then
    continue
  fi
  echo "install-peers.sh: installing $reqs into $venv" >&2
  rm -rf "$venv"  # a half-made or differently pinned venv is made again (its scripts name its path)
  python3 -m venv "$venv"
  # shellcheck disable=SC2086  # the pins are words on purpose
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install -q $reqs >&2
  "$venv/bin/python" -c "import $probe"
  printf '%s' "$reqs" >"$venv/.pins"
done
