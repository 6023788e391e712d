#!/usr/bin/env bash
# The system programs the test suite drives, installed once, in one place: `make test` and
# `.ci/run` both call this. Each is installed only when missing, so a second run costs a
# few `command -v` checks.
#   chromium     the status page test loads the page in a real headless browser
#   promtool     the alert rule tests (Debian's `prometheus` package ships it)
#   PostgreSQL   initdb and pg_ctl for the shared-state tests (Debian's `postgresql` server)
# `install-test-tools.sh image` installs what `make test-image` drives instead:
#   buildah      builds and runs the image (no daemon, no pull)
#   mmdebstrap   makes the Debian base image (`make base-image`)
# Debian and Ubuntu (apt-get) are supported; elsewhere it names what to install and fails.
set -euo pipefail

missing=()
pg_bindir_ok() {
  [[ -n "${LLAMA_ENTRA_PG_BINDIR:-}" && -x "${LLAMA_ENTRA_PG_BINDIR}/initdb" ]] && return 0
  command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
case "${1:-}" in
  "")
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    pg_bindir_ok || missing+=(postgresql)
    ;;
  image)
    command -v buildah >/dev/null 2>&1 || missing+=(buildah)
    command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
    ;;
  *) echo "usage: $0 [image]" >&2; exit 2 ;;
esac

((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-tools: install ${missing[*]} (no apt-get here); for PostgreSQL you may" \
    "instead set LLAMA_ENTRA_PG_BINDIR to the directory holding initdb" >&2
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install-test-tools: run as root or install sudo to install: ${missing[*]}" >&2
    exit 1
  }
  sudo=(sudo)
fi
echo "install-test-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# As .ci/run always did: chromium with its recommended fonts, prometheus without its many extras.
install() {
  local with=() without=()
  for package in "${missing[@]}"; do
    if [[ $package == prometheus ]]; then without+=("$package"); else with+=("$package"); fi
  done
  if ((${#with[@]})); then "${sudo[@]}" apt-get install -y "${with[@]}" || return 1; fi
  if ((${#without[@]})); then
    "${sudo[@]}" apt-get install -y --no-install-recommends "${without[@]}" || return 1
  fi
}
install || { "${sudo[@]}" apt-get update && install; }
# Debian's postgresql package starts a cluster of its own; the tests run private ones.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null 2>&1; then
  "${sudo[@]}" service postgresql stop >/dev/null 2>&1 || true
fi
