#!/usr/bin/env bash
# Starts the gateway with no config and no keys, asks the embedded model one question through
# the OpenAI-compatible API, prints the answer, and stops the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-4000}
.venv/bin/gatewise serve --port "$PORT" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.5
done
curl -sS "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"local","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":40}'
echo
