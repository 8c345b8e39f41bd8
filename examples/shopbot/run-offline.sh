#!/usr/bin/env bash
# ShopBot offline: a whole return conversation with a scripted model
# (lc-mockllm, mock.json) and a scripted customer (offline-inputs.txt),
# against the real shipping service, SQLite database and Maildir outbox.
# Prints the conversation and each action as it happens.
#   examples/shopbot/run-offline.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x build/luact ] && [ -x build/lc-mockllm ] && [ -x build/shopbot-shipping ] ||
  { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 1; }
data=${1:-$(mktemp -d /tmp/shopbot-XXXXXX)}
mkdir -p "$data"

# Each server prints one line once it accepts: reading it is the wait.
exec 3< <(exec build/lc-mockllm --port 0 --script examples/shopbot/mock.json)
mock_pid=$!
exec 4< <(exec build/shopbot-shipping --db "$data/shipping.db")
ship_pid=$!
trap 'kill "$mock_pid" "$ship_pid" 2>/dev/null || true' EXIT
read -r -t 10 mline <&3 || { echo "run-offline: mock LLM did not start" >&2; exit 1; }
read -r -t 10 sline <&4 || { echo "run-offline: shipping service did not start" >&2; exit 1; }
echo "(offline: model scripted by lc-mockllm at ${mline#listening on }, customer by offline-inputs.txt;"
echo " shipping service at ${sline#listening on }; data in $data)"
echo
OPENAI_BASE_URL="http://${mline#listening on }/v1" LUACT_MODEL="openai:mock-gpt" \
SHOPBOT_SHIPPING_URL="http://${sline#listening on }" SHOPBOT_DATA="$data" \
SHOPBOT_INPUTS=examples/shopbot/offline-inputs.txt SHOPBOT_RUN_ID="offline-demo" \
  build/luact chat examples/shopbot 2>&1
echo
echo "outbox: $(ls "$data/outbox/new")"
echo "labels: $(curl -s "http://${sline#listening on }/_requests" 2>/dev/null || true)"
