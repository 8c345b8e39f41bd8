#!/usr/bin/env bash
# Runs examples/vision offline: lc-mockllm checks that the image arrived in
# the provider's own form and answers (mock.json). Usage:
#   examples/vision/run-offline.sh [openai-responses|openai|anthropic|ollama|gemini|bedrock]
set -euo pipefail
prov=${1:-openai-responses}
cd "$(dirname "$0")/../.."
[ -x build/luact ] && [ -x build/lc-mockllm ] || {
  cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" >/dev/null
}
# The mock prints one line once it accepts: reading it is the wait.
exec 3< <(exec build/lc-mockllm --port 0 --script examples/vision/mock.json)
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3 || { echo "run-offline: mock server failed to start" >&2; exit 1; }
addr=${line#listening on }
echo "(offline: lc-mockllm at $addr plays $prov; see examples/vision/mock.json)" >&2
OPENAI_BASE_URL="http://$addr/v1" ANTHROPIC_BASE_URL="http://$addr" OLLAMA_HOST="http://$addr" \
  GOOGLE_GEMINI_BASE_URL="http://$addr/v1beta" AWS_ENDPOINT_URL_BEDROCK_RUNTIME="http://$addr" \
  OPENAI_API_KEY=offline ANTHROPIC_API_KEY=offline GEMINI_API_KEY=offline \
  AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_REGION=us-east-1 \
  LUACT_MODEL="$prov:mock-vision" \
  build/luact run examples/vision/describe.lua
