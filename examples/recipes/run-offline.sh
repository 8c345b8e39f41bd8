#!/usr/bin/env bash
# examples/recipes offline: luact.llm.json against lc-mockllm, whose
# scripted replies (mock.json) first break the schema, then name an
# excluded recipe, then fit: two repairs, then the accepted JSON.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x build/luact ] && [ -x build/lc-mockllm ] || { echo "build first: cmake --build build" >&2; exit 1; }
exec 3< <(exec build/lc-mockllm --port 0 --script examples/recipes/mock.json)
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3 || { echo "run-offline: mock server failed to start" >&2; exit 1; }
echo "(offline: model replies scripted by lc-mockllm at ${line#listening on })"
OPENAI_BASE_URL="http://${line#listening on }/v1" LUACT_MODEL="openai:mock-gpt" \
  build/luact run examples/recipes/agent.lua "$@"
