-- tests/valgrind/smoke.lua: the paths scripts/valgrind runs under
-- valgrind: an LLM call and a ReAct loop over curl against the mock
-- (BASE), a Lua tool, an MCP stdio session (a child process watched
-- without a pidfd: valgrind knows no pidfd_open), a sandboxed program (a
-- child too), the SQL tool on its thread, JSON. Each result is checked:
-- a path that silently did nothing would not pass.
local luact = require 'luact'
local BASE, LUACT, AGENTS = ...

local r = assert(luact.llm.chat{model = 'openai:m', base_url = BASE, retries = 0,
  messages = {{role = 'user', content = 'hello'}}})
assert(r.text == 'hi there', r.text)

local add = luact.tool{name = 'add', params = {type = 'object', required = {'a'},
  properties = {a = {type = 'number'}}}, fn = function(x) return {sum = x.a + 1} end}
local a = luact.react{model = 'openai:m', base_url = BASE, retries = 0, tools = {add},
  question = 'react: what is 1 + 1?', limits = {steps = 4}}
assert(a.status == 'finished' and a.answer == 'two', tostring(a.reason))

local s = assert(luact.mcp.connect{command = LUACT, args = {'mcp', 'serve', AGENTS}})
local t = assert(s.tool.add{a = 20, b = 22})
assert(t:find('42', 1, true), t)
s:close()

local v = assert(luact.sandbox.run('return {n = 6 * 7}'))
assert(v.value.n == 42)
local bad, msg = luact.sandbox.run('while true do end', {wall_ms = 200, instr_limit = 1e12})
assert(bad == nil and msg:find('limit exceeded'), tostring(msg))

local path = os.tmpname()
local db = assert(luact.sql.open(path, {create = true}))
assert(db:exec('CREATE TABLE t(a INT); INSERT INTO t VALUES (1), (2)'))
db:close()
local q = luact.tools.sql{db = path}
local rows = assert(q{sql = 'SELECT sum(a) AS s FROM t'})
assert(rows.rows[1].s == 3)
q.close()
os.remove(path)

assert(luact.json.decode(luact.json.encode{x = {1, 2}}).x[2] == 2)
print('valgrind smoke: ok')
