#!/usr/bin/env bash
# Start a Llama Stack server whose Azure providers need no credential at start-up.
#
#   llama-stack-entrypoint.sh SERVICE_CONFIG|--entra RUN_CONFIG [server options...]
#
# Enriches RUN_CONFIG (SERVICE_CONFIG decides whether Entra ID is used; --entra says so without
# a service config, so the server needs no Entra secret at all) into a private temporary file,
# creates the directories its stores write to (or exits naming one it cannot write), makes
# tiktoken's encoding available offline, then execs the installed backend's server on the
# result: `llama stack run` (llama-stack 0.7.3, with llama-entra's per-call fixes, see
# llama_entra.backends.llama_stack_server) or `ogx run --insecure` (OGX), with JSON logs.
# If enrichment fails it exits non-zero with the message: the unenriched config never starts.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 SERVICE_CONFIG|--entra RUN_CONFIG [server options...]" >&2
  exit 2
fi
source_arg=$1
run_config=$2
shift 2

if [[ "$source_arg" == "--entra" ]]; then
  source=(--entra)
else
  source=(-c "$source_arg")
fi

umask 077
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/llama-entra-stack.XXXXXX")
enriched="$work_dir/run.yaml"
python -m llama_entra.enrich "${source[@]}" -i "$run_config" -o "$enriched" --make-dirs

if [[ -z "${TIKTOKEN_CACHE_DIR:-}" ]]; then
  export TIKTOKEN_CACHE_DIR="$work_dir/tiktoken"
fi
python -c 'import os; from llama_entra.enrich import ensure_tiktoken_cache; ensure_tiktoken_cache(os.environ["TIKTOKEN_CACHE_DIR"])'

exec python -m llama_entra.stack "$enriched" "$@"
