#!/usr/bin/env bash
# examples/research offline: lc-mockllm plays the model (mock.json); the
# sub-questions run in parallel and the files tool reads corpus/ for real.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

# The mock prints one line once it accepts: reading it is the wait.
exec 3< <(exec build/lc-mockllm --port 0 --script examples/research/mock.json)
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3 || { echo "run-offline: mock server failed to start" >&2; exit 1; }
addr=${line#listening on }
echo "(offline: model replies scripted by lc-mockllm at $addr; see examples/research/mock.json)"
OPENAI_BASE_URL="http://$addr/v1" LUACT_MODEL="openai:mock-gpt" \
  build/luact run examples/research/agent.lua "${1:-Is a heat pump a good choice for a house in a cold climate?}"
