#!/usr/bin/env bash
# The image's install steps, in one place so tests can run them on the host.
#
#   container-install.sh deps      dependencies from uv.lock only (a layer reused until it changes)
#   container-install.sh project   llama-entra itself, not editable, and tiktoken's encoding
#
# Installs into $UV_PROJECT_ENVIRONMENT without dev tools; the tiktoken cache goes to
# $TIKTOKEN_CACHE_DIR so Llama Stack needs no download at run time. $BACKEND picks the Llama
# Stack backend: llama-stack (0.7.3, the default) or ogx (OGX 1.x).
set -euo pipefail
: "${UV_PROJECT_ENVIRONMENT:?set UV_PROJECT_ENVIRONMENT to the target virtual environment}"
backend=${BACKEND:-llama-stack}
case "$backend" in
  llama-stack|ogx) ;;
  *) echo "BACKEND must be llama-stack or ogx, not '$backend'" >&2; exit 2 ;;
esac

case "${1:-}" in
  deps)
    uv sync --frozen --no-dev --no-install-project --extra "$backend"
    ;;
  project)
    : "${TIKTOKEN_CACHE_DIR:?set TIKTOKEN_CACHE_DIR to where the encoding goes}"
    uv sync --frozen --no-dev --no-editable --extra "$backend"
    "$UV_PROJECT_ENVIRONMENT/bin/python" -c \
      'import os; from llama_entra.enrich import ensure_tiktoken_cache; ensure_tiktoken_cache(os.environ["TIKTOKEN_CACHE_DIR"])'
    ;;
  *)
    echo "usage: $0 deps|project" >&2
    exit 2
    ;;
esac
