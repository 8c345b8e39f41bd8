#!/usr/bin/env bash
# Re-records examples/shopbot/demo.journal, the journal the README's demo
# (scripts/demo) replays: one whole return, with the model scripted by
# lc-mockllm (mock.json), the customer by offline-inputs.txt, and the real
# shipping service, SQLite database and Maildir outbox.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=$(mktemp -d /tmp/shopbot-rec-XXXXXX)
exec 3< <(exec build/lc-mockllm --port 0 --script examples/shopbot/mock.json)
mock_pid=$!
exec 4< <(exec build/shopbot-shipping --db "$data/shipping.db")
ship_pid=$!
trap 'kill "$mock_pid" "$ship_pid" 2>/dev/null || true' EXIT
read -r -t 10 mline <&3
read -r -t 10 sline <&4
OPENAI_BASE_URL="http://${mline#listening on }/v1" LUACT_MODEL="openai:mock-gpt" \
SHOPBOT_SHIPPING_URL="http://${sline#listening on }" SHOPBOT_DATA="$data" \
SHOPBOT_INPUTS=examples/shopbot/offline-inputs.txt SHOPBOT_RUN_ID="offline-demo" \
  build/luact run --quiet --record examples/shopbot/demo.journal examples/shopbot/chat.lua
echo "recorded examples/shopbot/demo.journal ($(wc -l < examples/shopbot/demo.journal) lines)"
