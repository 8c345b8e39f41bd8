#!/usr/bin/env bash
# Runs the mcp_files agent offline against lc-mockllm, which answers with
# the scripted replies in mock.json (OpenAI wire format). Arguments are
# `luact run` options, e.g. --json, --trace FILE, --quiet.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x build/luact ] && [ -x build/lc-mockllm ] || {
  cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" >/dev/null
}
# The mock prints one line once it accepts: reading it is the wait.
exec 3< <(exec build/lc-mockllm --port 0 --script examples/mcp_files/mock.json)
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3 || { echo "run-offline: mock server failed to start" >&2; exit 1; }
addr=${line#listening on }
echo "(offline: model replies scripted by lc-mockllm at $addr; see examples/mcp_files/mock.json)" >&2
OPENAI_BASE_URL="http://$addr/v1" LUACT_MODEL="openai:mock-gpt" \
  build/luact run "$@" examples/mcp_files/agent.lua
