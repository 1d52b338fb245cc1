#!/usr/bin/env bash
# Installs the Debian packages knobengine needs, only those that are missing.
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --nsys    also Nsight Systems from Debian non-free
#   scripts/install-deps.sh --ncu     also Nsight Compute from Debian non-free (the ncu
#                                     pass; its tests read the reports it ships)
#   scripts/install-deps.sh --bench   also wrk and python3-venv for bench/
#   scripts/install-deps.sh --browser also Chromium, which the report tests render with
#   scripts/install-deps.sh --slurm   also Slurm and munge, whose daemons the executor
#                                     tests start on this machine (the packages' own
#                                     services are not started or enabled)
# Needs root (or sudo). Safe to run again: it does nothing when all is present.
set -euo pipefail

want_nsys=0 want_ncu=0 want_bench=0 want_browser=0 want_slurm=0
for arg in "$@"; do
  case "$arg" in
    --nsys) want_nsys=1 ;;
    --ncu) want_ncu=1 ;;
    --bench) want_bench=1 ;;
    --browser) want_browser=1 ;;
    --slurm) want_slurm=1 ;;
    *) echo "install-deps.sh: unknown option '$arg' (use --nsys, --ncu, --bench, --browser, --slurm)" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps.sh: run as root (or install sudo) to install packages" >&2; exit 1
  fi
fi

pkgs=(build-essential cmake pkg-config liblua5.4-dev lua5.4 lua-cjson-dev
      libsqlite3-dev sqlite3 libcurl4-openssl-dev curl python3
      clang libclang-rt-14-dev  # clang + libFuzzer for the fuzz targets of `make test`
      gnuplot-nox)              # the report's plots
[ "$want_bench" = 1 ] && pkgs+=(wrk python3-venv)  # python3-venv: scripts/install-peers.sh
[ "$want_browser" = 1 ] && pkgs+=(chromium)
[ "$want_slurm" = 1 ] && pkgs+=(slurmctld slurmd slurm-client munge)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

updated=0
apt_update() { [ "$updated" = 1 ] || { $SUDO apt-get update -q >&2; updated=1; }; }

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps.sh: installing ${missing[*]}" >&2
  apt_update
  # policy-rc.d 101: packages must not start their services (the tests run their own
  # daemons with generated configs)
  rc=/usr/sbin/policy-rc.d added_rc=0
  if [ "$want_slurm" = 1 ] && [ ! -e "$rc" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rc" >/dev/null && $SUDO chmod 755 "$rc" && added_rc=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  [ "$added_rc" = 1 ] && $SUDO rm -f "$rc"
fi

# nsight-systems and nsight-compute live in Debian's non-free component; their libcuda1
# dependency pulls nvidia-support from contrib. Adds a source for the same mirror and
# suite this machine already uses, with components contrib and non-free.
add_nonfree() {
  src=/etc/apt/sources.list.d/knobengine-nonfree.sources
  if [ ! -e "$src" ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || uri="http://deb.debian.org/debian"
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    echo "install-deps.sh: adding $src ($uri $suite contrib non-free)" >&2
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" "$suite" | $SUDO tee "$src" >/dev/null
    updated=0
  fi
  apt_update
}

if [ "$want_nsys" = 1 ] && ! command -v nsys >/dev/null 2>&1; then
  add_nonfree
  echo "install-deps.sh: installing nsight-systems (about 170 MB)" >&2
  # nsys is optional: without it runs complete with trace metrics 'na' and the nsys
  # tests are skipped, so a failure here is a warning, not an error
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nsight-systems >&2; then
    echo "install-deps.sh: WARNING: could not install nsight-systems; profiling will be skipped" >&2
  fi
fi
if [ "$want_nsys" = 1 ] && command -v nsys >/dev/null 2>&1; then
  # nsys looks for its report importer (QdstrmImporter) beside its real binary and in
  # ../host-linux-x64. Without it nsys leaves only a .qdstrm and `nsys stop` of a session
  # hangs. Debian's package puts the importer in /usr/lib/nsight-systems/host-linux-x64;
  # the copy bundled with Nsight Compute in ../linux-desktop-glibc_2_11_3-x64. Link the
  # directory where nsys looks to where the importer is.
  real=$(readlink -f "$(command -v nsys)")
  want="$(dirname "$(dirname "$real")")/host-linux-x64"
  have=""
  for d in /usr/lib/nsight-systems/host-linux-x64 "$(dirname "$(dirname "$real")")"/linux-desktop-*; do
    if [ -x "$d/QdstrmImporter" ]; then have="$d"; break; fi
  done
  if [ ! -e "$want/QdstrmImporter" ] && [ -n "$have" ] && [ ! -e "$want" ]; then
    echo "install-deps.sh: linking $want -> $have (nsys's report importer)" >&2
    $SUDO ln -s "$have" "$want"
  fi
  # the importer needs libdw.so.1 (and libelf.so.1), which a machine without
  # development tools may lack
  importer="$want/QdstrmImporter"
  [ -x "$importer" ] || importer="$have/QdstrmImporter"
  if [ -x "$importer" ] && "$importer" --help 2>&1 | grep -q "error while loading shared libraries"; then
    echo "install-deps.sh: installing libdw1 libelf1 (needed by $importer)" >&2
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends libdw1 libelf1 >&2
  fi
fi
if [ "$want_ncu" = 1 ] && ! command -v ncu >/dev/null 2>&1; then
  add_nonfree
  echo "install-deps.sh: installing nsight-compute (about 350 MB)" >&2
  # ncu is optional too: without it the ncu pass is skipped with the reason and the ncu
  # tests are skipped
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nsight-compute >&2; then
    echo "install-deps.sh: WARNING: could not install nsight-compute; the ncu pass will be skipped" >&2
  fi
fi
echo "install-deps.sh: dependencies present" >&2
