#!/usr/bin/env bash
# `make demo`: the emulator (Entra ID + Azure OpenAI) and the service in library mode, wired
# together on loopback. Prints the URL and example calls; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${LLAMA_ENTRA_DEMO_DIR:-.llama-entra/demo}
PORT=${LLAMA_ENTRA_PORT:-8080}
EMULATOR_PORT=${EMULATOR_PORT:-0}
mkdir -p "$STATE_DIR"
rm -f "$STATE_DIR/emulator/emulator.json"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

llama-entra emulator --port "$EMULATOR_PORT" --state-dir "$STATE_DIR/emulator" \
  >"$STATE_DIR/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [[ -s "$STATE_DIR/emulator/emulator.json" ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$STATE_DIR/emulator.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$STATE_DIR/emulator/emulator.json" ]] || { echo "emulator did not start" >&2; exit 1; }

# Point the service and the run config at the emulator (no real Azure anywhere).
eval "$(python3 - "$STATE_DIR/emulator/emulator.json" <<'PY'
import json, shlex, sys
info = json.load(open(sys.argv[1]))
values = {
    "AZURE_AUTHORITY_HOST": info["url"],
    "AZURE_CA_BUNDLE": info["ca_path"],
    "AZURE_TENANT_ID": info["tenant_id"],
    "AZURE_CLIENT_ID": info["client_id"],
    "AZURE_CLIENT_SECRET": info["client_secret"],
    "AZURE_API_BASE": info["azure_base_url"],
    "AZURE_MODEL": info["models"][0],
}
for name, value in values.items():
    print(f"export {name}={shlex.quote(value)}")
PY
)"
export LLAMA_ENTRA_PORT=$PORT LLAMA_ENTRA_STATE_DIR=$STATE_DIR

llama-entra serve -c run-configs/llama-entra-demo.yaml >"$STATE_DIR/service.log" 2>&1 &
pids+=($!)
URL="http://127.0.0.1:$PORT"
ready() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$URL/readiness" >/dev/null 2>&1
}
for _ in $(seq 600); do
  ready && break
  kill -0 "${pids[1]}" 2>/dev/null || { tail -n 30 "$STATE_DIR/service.log" >&2; exit 1; }
  sleep 0.1
done
ready || { echo "service did not become ready" >&2; exit 1; }

cat <<EOT
llama-entra demo is up: $URL (docs: $URL/docs)
  emulator (Entra ID + Azure OpenAI): $AZURE_AUTHORITY_HOST   logs: $STATE_DIR/*.log

Try:
  curl -s $URL/v1/query -H 'content-type: application/json' -d '{"query": "Hello Entra"}'
  curl -sN $URL/v1/streaming_query -H 'content-type: application/json' -d '{"query": "stream me"}'
  python3 -c 'import openai; c = openai.OpenAI(base_url="$URL/v1", api_key="none"); print(c.chat.completions.create(model="azure/$AZURE_MODEL", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content)'

Ctrl-C stops both.
EOT
wait -n "${pids[@]}"
