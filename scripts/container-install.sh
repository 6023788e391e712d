#!/usr/bin/env bash
# The image's install steps, in one place so tests can run them on the host.
#
#   container-install.sh uv        uv itself ($UV_VERSION) into a venv at $UV_HOME (build stage only)
#   container-install.sh deps      dependencies from uv.lock only (a layer reused until it changes)
#   container-install.sh project   llama-entra itself, not editable, and tiktoken's encoding
#
# Installs into $UV_PROJECT_ENVIRONMENT without dev tools; the tiktoken cache goes to
# $TIKTOKEN_CACHE_DIR so Llama Stack needs no download at run time. $BACKEND picks the Llama
# Stack backend: llama-stack (0.7.3, the default) or ogx (OGX 1.x).
#
# Behind a TLS-inspecting proxy, pass its CA as the build secret `ca-bundle` (mounted at
# /run/secrets/ca-bundle, or $EXTRA_CA_BUNDLE): it is added to the system CAs in a temporary
# file for this step's downloads only, so it never lands in a layer.
set -euo pipefail
backend=${BACKEND:-llama-stack}
case "$backend" in
  llama-stack|ogx) ;;
  *) echo "BACKEND must be llama-stack or ogx, not '$backend'" >&2; exit 2 ;;
esac

# llama-stack 0.7.3 requires Oracle's `oci` SDK (474 MB, half the image) for its OCI
# inference provider alone; the image serves Azure, so it is left out.
skip=()
if [[ "$backend" == llama-stack ]]; then skip=(--no-install-package oci); fi

extra_ca=${EXTRA_CA_BUNDLE:-/run/secrets/ca-bundle}
if [[ -s "$extra_ca" ]]; then
  bundle=$(mktemp)
  trap 'rm -f "$bundle"' EXIT
  system_ca=/etc/ssl/certs/ca-certificates.crt
  if [[ -r "$system_ca" ]]; then cat "$system_ca" "$extra_ca" >"$bundle"; else cat "$extra_ca" >"$bundle"; fi
  export SSL_CERT_FILE="$bundle" PIP_CERT="$bundle"
fi

case "${1:-}" in
  uv)
    : "${UV_VERSION:?set UV_VERSION to the uv release to install}"
    : "${UV_HOME:?set UV_HOME to the venv that holds uv}"
    python3 -m venv "$UV_HOME"
    "$UV_HOME/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
    ;;
  deps)
    : "${UV_PROJECT_ENVIRONMENT:?set UV_PROJECT_ENVIRONMENT to the target virtual environment}"
    uv sync --frozen --no-dev --no-install-project --extra "$backend" "${skip[@]}"
    ;;
  project)
    : "${UV_PROJECT_ENVIRONMENT:?set UV_PROJECT_ENVIRONMENT to the target virtual environment}"
    : "${TIKTOKEN_CACHE_DIR:?set TIKTOKEN_CACHE_DIR to where the encoding goes}"
    uv sync --frozen --no-dev --no-editable --extra "$backend" "${skip[@]}"
    "$UV_PROJECT_ENVIRONMENT/bin/python" -c \
      'import os; from llama_entra.enrich import ensure_tiktoken_cache; ensure_tiktoken_cache(os.environ["TIKTOKEN_CACHE_DIR"])'
    # Written private (mkstemp); the image runs as another user, who only reads it.
    chmod -R a+rX "$TIKTOKEN_CACHE_DIR"
    ;;
  *)
    echo "usage: $0 uv|deps|project" >&2
    exit 2
    ;;
esac
