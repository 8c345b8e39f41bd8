#!/usr/bin/env bash
# Runs examples/hello offline: lc-mockllm answers with the scripted model
# replies in mock.json (OpenAI wire format), which also has the replies for
# the snippets of docs/quickstart.md. Usage:
#   examples/hello/run-offline.sh [FILE.lua] [luact run options]
# FILE.lua (default: agent.lua beside this script) may be one of the
# quickstart snippets saved to a file.
set -euo pipefail
script=examples/hello/agent.lua
if [[ "${1:-}" == *.lua ]]; then script=$(realpath "$1"); shift; fi
cd "$(dirname "$0")/../.."
[ -x build/luact ] && [ -x build/lc-mockllm ] || {
  cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" >/dev/null
}
# The mock prints one line once it accepts: reading it is the wait.
exec 3< <(exec build/lc-mockllm --port 0 --script examples/hello/mock.json)
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3 || { echo "run-offline: mock server failed to start" >&2; exit 1; }
addr=${line#listening on }
echo "(offline: model replies scripted by lc-mockllm at $addr; see examples/hello/mock.json)" >&2
OPENAI_BASE_URL="http://$addr/v1" LUACT_MODEL="openai:mock-gpt" \
  build/luact run "$@" "$script"
