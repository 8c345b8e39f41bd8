-- tests/mcp/example_notes_client.lua: luact's own client against
-- `luact mcp serve examples/mcp_serve` (check_mcp_serve.c example_notes):
-- resources, a template, a prompt, a completion, rich content, and a
-- sampling tool refused clearly (luact's client offers no sampling).
local bin, dir = ...
local s = assert(luact.mcp.connect{command = bin, args = {'mcp', 'serve', dir}})
print('version=' .. s.version)
local idx = assert(s:read('notes://index'))
print('index=' .. idx[1].text:gsub('\n', ','))
print('add=' .. luact.json.encode(s:call('add_note', {name = 'todo', text = 'Write the report.'})))
print('note=' .. s:read('notes://todo')[1].text)
local p = assert(s:prompt('summarise', {name = 'todo', style = 'brief'}))
print('prompt=' .. luact.json.encode(p.messages))
print('title=' .. luact.json.encode(s:call('title_for', {name = 'todo'})))
local c = assert(s:request('completion/complete', {ref = {type = 'ref/resource', uri = 'notes://{name}'},
  argument = {name = 'name', value = 'w'}}))
print('complete=' .. luact.json.encode(c.completion.values))
print('missing=' .. select(2, s:read('notes://nope')))
s:close()
