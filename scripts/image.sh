#!/usr/bin/env bash
# Build the container image with whichever engine works here: `make image`, `make base-image`.
#
#   image.sh engine   print the engine: $ENGINE, else podman, docker (when its daemon answers),
#                     buildah; fails naming what to install when none works
#   image.sh build    the llama-entra image $IMAGE from Containerfile for $BACKEND
#                     (llama-stack | ogx) on $PYTHON_IMAGE (empty: the Containerfile's default)
#   image.sh base     a Debian 13 base image $BASE_IMAGE (Python 3.13, venv, ca-certificates)
#                     made with mmdebstrap from $DEBIAN_MIRROR, for machines that cannot pull
#
# $CA_BUNDLE (default: the host's /etc/ssl/certs/ca-certificates.crt when present; empty: none)
# goes to the build as the secret `ca-bundle`, for downloads through a TLS-inspecting proxy:
# never a build argument, never in a layer. Proxy variables reach the build: podman and
# buildah pass the host's by default, docker gets them as build arguments.
# buildah builds with BUILDAH_ISOLATION=chroot unless it is set: what works inside a container
# (CI), where its default OCI runtime may find no usable cgroups.
# Images are built in Docker format: the OCI format has no HEALTHCHECK.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/llama-entra:0.1.0}
BACKEND=${BACKEND:-llama-stack}
PYTHON_IMAGE=${PYTHON_IMAGE:-}
BASE_IMAGE=${BASE_IMAGE:-localhost/llama-entra-base:trixie}
DEBIAN_SUITE=${DEBIAN_SUITE:-trixie}
if [[ -z "${CA_BUNDLE+set}" && -r /etc/ssl/certs/ca-certificates.crt ]]; then
  CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
CA_BUNDLE=${CA_BUNDLE:-}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

engine() {
  if [[ -n "${ENGINE:-}" ]]; then
    command -v "$ENGINE" >/dev/null 2>&1 || { echo "image.sh: ENGINE=$ENGINE is not on PATH" >&2; return 1; }
    basename "$ENGINE"
    return
  fi
  if command -v podman >/dev/null 2>&1; then echo podman; return; fi
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v buildah >/dev/null 2>&1; then echo buildah; return; fi
  echo "image.sh: no container engine: install podman, docker (with a running daemon) or buildah" >&2
  return 1
}

# build ENGINE CONTEXT CONTAINERFILE TAG [extra build options...]
build() {
  local tool=$1 context=$2 file=$3 tag=$4
  shift 4
  local options=(-f "$file" -t "$tag" "$@")
  if [[ -n "$CA_BUNDLE" ]]; then
    [[ -r "$CA_BUNDLE" ]] || { echo "image.sh: CA_BUNDLE=$CA_BUNDLE is not readable" >&2; return 2; }
    options+=(--secret "id=ca-bundle,src=$CA_BUNDLE")
  fi
  case "$tool" in
    docker)
      for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        if [[ -n "${!name:-}" ]]; then options+=(--build-arg "$name"); fi
      done
      DOCKER_BUILDKIT=1 docker build "${options[@]}" "$context"
      ;;
    podman) podman build --format docker "${options[@]}" "$context" ;;
    buildah) buildah build --format docker "${options[@]}" "$context" ;;
    *) echo "image.sh: unsupported engine '$tool' (podman, docker or buildah)" >&2; return 2 ;;
  esac
}

debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local url
  url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -oE '(https?://[^ ]*/debian)/?( |$)' | grep -v security | head -n 1 | tr -d ' ')
  echo "${url:-http://deb.debian.org/debian}"
}

base() {
  local tool=$1
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "image.sh: mmdebstrap is needed for the base image (apt-get install mmdebstrap)" >&2
    return 1
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/llama-entra-base.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # Documentation, manual pages and translations are left out: nothing in the image reads them.
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$DEBIAN_SUITE" "$work/rootfs.tar" "$(debian_mirror)"
  printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'CMD ["python3"]' >"$work/Containerfile"
  CA_BUNDLE='' build "$tool" "$work" "$work/Containerfile" "$BASE_IMAGE"
}

case "${1:-}" in
  engine) engine ;;
  build)
    tool=$(engine)
    args=(--build-arg "BACKEND=$BACKEND")
    if [[ -n "$PYTHON_IMAGE" ]]; then args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"); fi
    build "$tool" . Containerfile "$IMAGE" "${args[@]}"
    ;;
  base) base "$(engine)" ;;
  *)
    echo "usage: $0 engine|build|base" >&2
    exit 2
    ;;
esac
