#!/usr/bin/env bash
# examples/native_tool offline: lc-mockllm plays the model (mock.json); the
# C library is compiled and called for real.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

# The mock prints one line once it accepts: reading it is the wait.
exec 3< <(exec build/lc-mockllm --port 0 --script examples/native_tool/mock.json)
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3 || { echo "run-offline: mock server failed to start" >&2; exit 1; }
addr=${line#listening on }
echo "(offline: model replies scripted by lc-mockllm at $addr; see examples/native_tool/mock.json)"
OPENAI_BASE_URL="http://$addr/v1" LUACT_MODEL="openai:mock-gpt" \
  build/luact run examples/native_tool/agent.lua "${1:-What is the monthly payment on 250000 at 4.5% over 30 years?}"
