-- tests/mcp/luact_session_client.lua: luact's own client at 2025-11-25 (a
-- session over HTTP) against `luact mcp serve --http tests/mcp/agents_features`
-- (check_mcp_serve.c luact_client_session): content, a resource, a call
-- whose stream the server closes (resumed with Last-Event-ID), logging.
local url = ...
local s = assert(luact.mcp.connect{url = url, headers = {Authorization = 'Bearer test-token-0123456789'}, protocol = '2025-11-25'})
print('version', s.version)
print(luact.json.encode(s.tool.picture{}))
print(luact.json.encode(s:read('notes://monday')))
print(luact.json.encode(s:call('patient', {})))
print(luact.json.encode(s:call('chatty', {})))
s:close()
print('closed')
