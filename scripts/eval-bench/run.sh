#!/usr/bin/env bash
# luact eval against promptfoo on the same 1,000-case dataset and the same
# mock LLM (lc-mockllm, one generated reply for every request), side by
# side in one run: wall time, client CPU (user+sys) and peak memory (max
# RSS) of each evaluator, then luact's replay of its own run. Not run by
# the test command (it installs promptfoo from npm: package.json and
# package-lock.json here pin it). Results: docs/BENCHMARKS.md, "luact eval".
#
#   scripts/eval-bench/run.sh              # 1,000 cases, 16 at a time
#   CASES=200 CONC=4 scripts/eval-bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CASES=${CASES:-1000}
CONC=${CONC:-16}
for c in node npm python3 /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "eval-bench: needs $c" >&2; exit 1; }
done
BIN=$ROOT/build-bench
cmake -S . -B "$BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUACT_SANITIZE=OFF >/dev/null
cmake --build "$BIN" -j2 --target luact lc-mockllm >/dev/null
W=$ROOT/build/eval-bench
mkdir -p "$W"
cp scripts/eval-bench/package.json scripts/eval-bench/package-lock.json "$W/"
if [ ! -d "$W/node_modules/promptfoo" ]; then
  # better-sqlite3's install script fetches a prebuilt binary from GitHub
  # (unreachable here): install without scripts, then build it against
  # Debian's Node headers.
  (cd "$W" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null &&
   cd node_modules/better-sqlite3 &&
   node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" rebuild --release --nodedir=/usr >/dev/null)
fi
# promptfoo 0.120.0 looks for its database migrations in drizzle/ and ships
# them in dist/drizzle/.
[ -e "$W/node_modules/promptfoo/drizzle" ] || ln -s dist/drizzle "$W/node_modules/promptfoo/drizzle"

echo '[{"match": {"path": "/v1/chat/completions"}, "reply": {"openai": {"text": "Hello world, this is a short answer about the topic."}}}]' >"$W/mock.json"
exec 3< <(exec "$BIN/lc-mockllm" --port 0 --script "$W/mock.json")
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
read -r -t 10 line <&3
URL="http://${line#listening on }/v1"

# The dataset and both configurations.
python3 - "$W" "$CASES" "$CONC" "$URL" <<'PY'
import json, sys
w, n, conc, url = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(f"{w}/cases.jsonl", "w") as f:
    for i in range(n):
        f.write(json.dumps({"id": str(i), "vars": {"topic": f"topic number {i}"}}) + "\n")
with open(f"{w}/tests.json", "w") as f:
    json.dump([{"vars": {"topic": f"topic number {i}"}} for i in range(n)], f)
with open(f"{w}/bench.eval.lua", "w") as f:
    f.write('return {\n'
            '  targets = {{ name = "p", model = "openai:mock-gpt", prompt = "Write one sentence about {{topic}}.",\n'
            '               params = { temperature = 0 } }},\n'
            '  dataset = "cases.jsonl",\n'
            '  assert = {{ type = "icontains", value = "hello" }, { type = "latency", value = 10000 }},\n'
            f'  concurrency = {conc},\n'
            '}\n')
with open(f"{w}/promptfooconfig.json", "w") as f:
    json.dump({
        "description": "bench",
        "prompts": ["Write one sentence about {{topic}}."],
        "providers": [{"id": "openai:chat:mock-gpt",
                       "config": {"apiBaseUrl": url, "apiKey": "x", "temperature": 0}}],
        "tests": "file://tests.json",
        "defaultTest": {"assert": [{"type": "icontains", "value": "hello"},
                                   {"type": "latency", "threshold": 10000}]},
    }, f, indent=1)
PY

measure() { # name, command...
  local name=$1; shift
  local rc=0
  /usr/bin/time -f "%e %U %S %M" -o "$W/time.txt" "$@" >"$W/out-${name// /_}.txt" 2>&1 || rc=$?
  read -r wall user sys rss < <(tail -1 "$W/time.txt")  # after "Command exited with ..."
  python3 -c "import sys; w,u,s,r=map(float,sys.argv[1:5]); print(f'| {sys.argv[5]} | {w:.2f} s | {u+s:.2f} s | {r/1024:.0f} MiB | {sys.argv[6]} |')" \
    "$wall" "$user" "$sys" "$rss" "$name" "$rc"
}
echo "| $CASES cases, $CONC at a time | wall | CPU (user+sys) | max RSS | exit |"
echo "|---|---|---|---|---|"
cd "$W"
rm -rf run replay
OPENAI_BASE_URL=$URL measure "luact eval" "$BIN/luact" eval --quiet --out run bench.eval.lua
PROMPTFOO_DISABLE_TELEMETRY=1 PROMPTFOO_DISABLE_UPDATE=1 PROMPTFOO_CACHE_ENABLED=false \
  PROMPTFOO_CONFIG_DIR="$W/.promptfoo" measure "promptfoo eval" node_modules/.bin/promptfoo eval \
  -c promptfooconfig.json --no-cache --no-table --no-progress-bar --max-concurrency "$CONC" -o promptfoo-out.json
measure "luact eval --replay" "$BIN/luact" eval --quiet --replay run --out replay bench.eval.lua
python3 - <<'PY'
import json
a = json.load(open("run/results.json"))["totals"]
b = json.load(open("replay/results.json"))["totals"]
print(f"luact: {a['passed']}/{a['runs']} passed; replay: {b['passed']}/{b['runs']}")
try:
    p = json.load(open("promptfoo-out.json"))["results"]["stats"]
    print(f"promptfoo: {p['successes']} passed, {p['failures']} failed, {p.get('errors', 0)} errors")
except Exception as e:
    print("promptfoo: no results (", e, ")")
PY
