#!/usr/bin/env bash
# Runs examples/rag_docs offline: lc-mockllm answers the embeddings (by
# feature hashing, mock.json) and the model's scripted replies. Arguments
# are `luact run` options, e.g. --record run.jsonl (then
# `build/luact run --replay run.jsonl examples/rag_docs/agent.lua` answers
# again with no server), --json, --quiet. A first argument ending in .lua
# runs that script instead (eval.lua: recall@k and context precision).
set -euo pipefail
script=examples/rag_docs/agent.lua
if [[ "${1:-}" == *.lua ]]; then script=$(realpath "$1"); shift; fi
cd "$(dirname "$0")/../.."
[ -x build/luact ] && [ -x build/lc-mockllm ] || {
  cmake -S . -B build >/dev/null && cmake --build build -j2 >/dev/null
}
# The mock prints one line once it accepts: reading it is the wait.
exec 3< <(exec build/lc-mockllm --port 0 --script examples/rag_docs/mock.json)
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3 || { echo "run-offline: mock server failed to start" >&2; exit 1; }
addr=${line#listening on }
echo "(offline: embeddings and model replies from lc-mockllm at $addr; see examples/rag_docs/mock.json)" >&2
OPENAI_BASE_URL="http://$addr/v1" OPENAI_API_KEY=offline LUACT_MODEL="openai:mock-gpt" \
  LUACT_EMBED_MODEL="openai:mock-embed" build/luact run "$@" "$script"
