-- tools_builtin.lua: luact.tools.http / sql / files / native: factories
-- that turn the built-in tools into luact.tool objects, with JSON schemas
-- and descriptions a model can act on, and the right effect class.
-- Declaring checks every field with its own message (raises); at call time
-- the tool's schema rejects bad arguments before anything runs, and every
-- operational failure comes back as nil, message (Tool:call adds the code).
local luact, check_opts = ...

local json = luact.json
local tools = luact.tools or {}
luact.tools = tools

local function ferr(factory, field, msg)
  error(string.format("luact.tools.%s: '%s' %s", factory, field, msg), 3)
end

local function type_name(v)
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__name) == "string" then return mt.__name end
  if type(mt) == "string" then return mt end -- a __metatable guard (NativeFn)
  return type(v)
end

local function opt_string(spec, factory, field)
  local v = spec[field]
  if v ~= nil and type(v) ~= "string" then ferr(factory, field, "must be a string") end
  return v
end

local function opt_positive(spec, factory, field, default, integer)
  local v = spec[field]
  if v == nil then return default end
  if type(v) ~= "number" or not (v > 0) or (integer and math.type(v) ~= "integer") then
    ferr(factory, field, integer and "must be a positive integer" or "must be a positive number")
  end
  return v
end

-- Common tail: luact.tool does the name/effect/timeout checks itself.
local function make(spec, defaults)
  local t = luact.tool{
    name = spec.name or defaults.name,
    description = spec.description or defaults.description,
    params = defaults.params,
    fn = defaults.fn,
    effect = spec.effect or defaults.effect,
    timeout = defaults.timeout or spec.timeout,
  }
  t.close = defaults.close or function() end
  return t
end

---------------------------------------------------------------------------
-- http
---------------------------------------------------------------------------

local SAFE = { GET = true, HEAD = true, OPTIONS = true }

local function pct(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function encode_query(q)
  if q == nil then return "" end
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if v == json.null then v = "" end
    parts[#parts + 1] = pct(k) .. "=" .. pct(v)
  end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

local key_seq = 0

--- luact.tools.http{base_url=, allow_methods={"GET"}, headers=, timeout=30,
-- max_body=1 MiB, idempotency_key=false, effect=, name="http", description=}
-- The model gives {method, path, query, body}; the URL is base_url .. path.
-- idempotency_key = true sends Idempotency-Key with ctx.idempotency_key
-- (the effect identity the engine passes) or a fresh key; a function
-- (args, ctx) -> key chooses it.
function tools.http(spec)
  local F = "http"
  if type(spec) ~= "table" then error("luact.tools.http: expected a table {base_url=, allow_methods=, ...}", 2) end
  local bad = check_opts(spec, "luact.tools.http")
  if bad then error(bad, 2) end
  local base = spec.base_url
  if type(base) ~= "string" or not base:match("^[hH][tT][tT][pP][sS]?://[^/?#%s]+") or base:find("[?#%s]") then
    ferr(F, "base_url", "must be an http:// or https:// URL without query or fragment")
  end
  base = base:gsub("/+$", "")
  local methods = spec.allow_methods or { "GET" }
  if type(methods) ~= "table" or #methods == 0 then ferr(F, "allow_methods", "must be a non-empty list such as {\"GET\", \"POST\"}") end
  local allowed, list, all_safe = {}, {}, true
  for i, m in ipairs(methods) do
    if type(m) ~= "string" or not m:match("^%a+$") then ferr(F, "allow_methods", "[" .. i .. "] must be a method name") end
    m = m:upper()
    if not allowed[m] then
      allowed[m] = true
      list[#list + 1] = m
      all_safe = all_safe and SAFE[m] ~= nil
    end
  end
  local headers = spec.headers
  if headers ~= nil and type(headers) ~= "table" then ferr(F, "headers", "must be a table {name = value}") end
  local timeout = opt_positive(spec, F, "timeout", 30)
  local max_body = opt_positive(spec, F, "max_body", 1 << 20, true)
  local idem = spec.idempotency_key
  if idem ~= nil and type(idem) ~= "boolean" and type(idem) ~= "function" then
    ferr(F, "idempotency_key", "must be true or a function(args, ctx) -> key")
  end
  opt_string(spec, F, "name")
  opt_string(spec, F, "description")
  local effect = (all_safe or idem) and "idempotent" or "at_most_once"
  local has_body_method = not all_safe

  local props = {
    method = { type = "string", enum = list, description = "HTTP method (default " .. list[1] .. ")" },
    path = {
      type = "string", minLength = 1,
      description = "Path under " .. base .. ", starting with '/', e.g. /items/42. " ..
        "No '..', '?' or '#': put query parameters in 'query'.",
    },
    query = {
      type = "object",
      additionalProperties = { type = { "string", "number", "boolean" } },
      description = "Query parameters, e.g. {\"q\": \"lamp\", \"limit\": 5}",
    },
  }
  if has_body_method then
    props.body = { description = "JSON request body (not for GET/HEAD)" }
  end

  local function fn(args, ctx)
    local method = args.method or list[1]
    -- The model's path must name something under base_url however a
    -- server decodes it (http_tool.h), and the URL as sent is checked
    -- again against base_url (under).
    local ok, msg = luact.http.check_path(base, args.path)
    if not ok then return nil, msg end
    local req = {
      method = method, url = base .. args.path .. encode_query(args.query),
      headers = headers, timeout = timeout, max_body = max_body, under = base,
    }
    if args.body ~= nil then
      if SAFE[method] then return nil, "a body is not allowed with " .. method end
      req.body = args.body
    end
    if type(idem) == "function" then
      req.idempotency_key = idem(args, ctx)
    elseif idem then
      key_seq = key_seq + 1
      req.idempotency_key = ctx and ctx.idempotency_key or
        string.format("luact-%.0f-%d", luact.now() * 1e6, key_seq)
    end
    local r, err, code = luact.http.request(req)
    if not r then return nil, string.format("%s %s failed (%s): %s", method, args.path, code, err) end
    local res = { status = r.status, content_type = r.headers["content-type"] }
    if r.json ~= nil then res.json = r.json else res.body = r.body end
    return res
  end

  return make(spec, {
    name = "http",
    description = string.format(
      "Call the HTTP API at %s (methods: %s). Give the method, a path starting with '/', " ..
      "optional query parameters%s. Returns the status and the JSON body (or text).",
      base, table.concat(list, ", "), has_body_method and " and a JSON body" or ""),
    params = { type = "object", properties = props, required = { "path" }, additionalProperties = false },
    fn = fn,
    effect = effect,
    -- The request's own timeout fires first and names what timed out.
    timeout = timeout + 5,
  })
end

---------------------------------------------------------------------------
-- sql
---------------------------------------------------------------------------

local SQL_HINT = {
  readonly = " (this tool is read-only: use SELECT; writes are refused)",
  bad_params = " (give one value per placeholder: a list for ?, an object for :name)",
  denied = " (see the SQL tool's limits: no extensions, files, ATTACH, VACUUM or pragmas that change the connection)",
  timeout = " (the query ran past the tool's time limit; narrow it, add a LIMIT or a WHERE)",
  limit = " (a value, the SQL text or temporary storage passed the tool's size limit)",
}

--- luact.tools.sql{db = <luact.sql db or path>, readonly = true,
-- max_rows = 50, name="sql", description=}
-- The model gives {sql, params}; values are always bound, never spliced.
function tools.sql(spec)
  local F = "sql"
  if type(spec) ~= "table" then error("luact.tools.sql: expected a table {db=, readonly=, ...}", 2) end
  local bad = check_opts(spec, "luact.tools.sql")
  if bad then error(bad, 2) end
  local readonly = spec.readonly ~= false
  if spec.readonly ~= nil and type(spec.readonly) ~= "boolean" then ferr(F, "readonly", "must be a boolean") end
  local max_rows = opt_positive(spec, F, "max_rows", 50, true)
  opt_string(spec, F, "name")
  opt_string(spec, F, "description")
  local db, owned = spec.db, false
  if type(db) == "string" then
    local d, err = luact.sql.open(db, { readonly = readonly })
    if not d then ferr(F, "db", "cannot be opened: " .. err) end
    db, owned = d, true
  elseif type_name(db) == "luact.SqlDb" then
    if readonly and not tostring(db):find("read-only", 1, true) then
      ferr(F, "db", "is read-write; open it with luact.sql.open(path, {readonly = true}) " ..
        "or pass readonly = false")
    end
  else
    ferr(F, "db", "must be a luact.sql database or a path")
  end

  -- The tables go into the description: the model needs them to write SQL.
  local schema_text = {}
  local r = db:query("SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') AND sql IS NOT NULL " ..
    "AND name NOT LIKE 'sqlite_%' ORDER BY name")
  for _, row in ipairs(r and r.rows or {}) do schema_text[#schema_text + 1] = row.sql end

  -- The query's own deadline is the tool's timeout: the SQL thread stops
  -- the statement then, not just the task waiting for it.
  local deadline = type(spec.timeout) == "number" and spec.timeout > 0 and spec.timeout or 60
  local function fn(args)
    local res, err, code = db:query(args.sql, args.params, { max_rows = max_rows, timeout = deadline })
    if not res then return nil, err .. (SQL_HINT[code] or "") end
    local out = { columns = res.columns, rows = res.rows, row_count = res.row_count, truncated = res.truncated }
    if not readonly then out.changes = res.changes end
    return out
  end

  return make(spec, {
    name = "sql",
    description = string.format(
      "Run one %sSQL statement on a SQLite database; returns up to %d rows as JSON. " ..
      "Use ? or :name placeholders and pass the values in params.%s",
      readonly and "read-only " or "", max_rows,
      #schema_text > 0 and ("\nSchema:\n" .. table.concat(schema_text, ";\n")) or ""),
    params = {
      type = "object",
      properties = {
        sql = { type = "string", minLength = 1, description = "One SQLite statement, e.g. SELECT name FROM t WHERE id = ?" },
        params = {
          type = { "array", "object" },
          description = "Values for the placeholders: a list for ?, an object for :name",
        },
      },
      required = { "sql" },
      additionalProperties = false,
    },
    fn = fn,
    -- A writable database: nothing says a write can be repeated safely.
    effect = readonly and "pure" or "at_most_once",
    close = function() if owned then db:close() end end,
  })
end

---------------------------------------------------------------------------
-- files
---------------------------------------------------------------------------

--- luact.tools.files{root = <path or luact.files root>, max_bytes = 64 KiB,
-- name="files", description=}. The model gives {action = "read"|"list", path}.
function tools.files(spec)
  local F = "files"
  if type(spec) ~= "table" then error("luact.tools.files: expected a table {root=, ...}", 2) end
  local bad = check_opts(spec, "luact.tools.files")
  if bad then error(bad, 2) end
  local max_bytes = opt_positive(spec, F, "max_bytes", 64 * 1024, true)
  opt_string(spec, F, "name")
  opt_string(spec, F, "description")
  local root, owned = spec.root, false
  if type(root) == "string" then
    local r, err = luact.files.root(root)
    if not r then ferr(F, "root", "cannot be opened: " .. err) end
    root, owned = r, true
  elseif type_name(root) ~= "luact.FilesRoot" then
    ferr(F, "root", "must be a directory path or a luact.files root")
  end

  local function fn(args)
    local path = args.path or "."
    if args.action == "list" then
      local entries, err = root:list(path)
      if not entries then return nil, err end
      return { path = path, entries = entries }
    end
    if args.path == nil then return nil, "action 'read' needs a 'path' (use action 'list' to see the files)" end
    local content, err = root:read(path, { max_bytes = max_bytes })
    if not content then return nil, err end
    return { path = path, content = content }
  end

  return make(spec, {
    name = "files",
    description = string.format(
      "Read-only access to a document library. action 'list' lists a directory " ..
      "(path '.' is the top); action 'read' returns a text file's content (up to %d bytes). " ..
      "Paths are relative to the library, e.g. notes/intro.txt.", max_bytes),
    params = {
      type = "object",
      properties = {
        action = { type = "string", enum = { "read", "list" } },
        path = { type = "string", minLength = 1, description = "Relative path, e.g. '.' or notes/intro.txt" },
      },
      required = { "action" },
      additionalProperties = false,
    },
    fn = fn,
    effect = "pure",
    close = function() if owned then root:close() end end,
  })
end

---------------------------------------------------------------------------
-- native
---------------------------------------------------------------------------

--- luact.tools.native{lib=, symbol=, signature=, args = {...}, result =
-- function(r) -> value, name=symbol, description=, effect="pure"}
-- args names the C arguments in order: "name", {name=, description=}, or
-- {name=, value=} for an argument the script fixes (a mode, say; buffer
-- sizes are len in the signature, filled by the runtime),
-- which the model never sees. With args the model passes named arguments;
-- without, {args = [...]}. The schema comes from the C signature, so a
-- wrong type, count or range is refused before the native call. result
-- reshapes what the function returns (e.g. r.buffers[1]).
-- JSON numbers are doubles: an integer result past 2^53 goes to the model
-- as exact decimal text (as the arguments come), not rounded.
local function exact(v)
  if math.type(v) == "integer" and (v >= 1 << 53 or v <= -(1 << 53)) then return tostring(v) end
  return v
end

function tools.native(spec)
  local F = "native"
  if type(spec) ~= "table" then error("luact.tools.native: expected a table {lib=, symbol=, signature=, ...}", 2) end
  local bad = check_opts(spec, "luact.tools.native")
  if bad then error(bad, 2) end
  for _, f in ipairs { "lib", "symbol", "signature" } do
    if type(spec[f]) ~= "string" then ferr(F, f, "must be a string") end
  end
  opt_string(spec, F, "name")
  opt_string(spec, F, "description")
  local shape = spec.result
  if shape ~= nil and type(shape) ~= "function" then ferr(F, "result", "must be a function(r) -> value") end
  local nfn, err = luact.native.declare { lib = spec.lib, symbol = spec.symbol, signature = spec.signature }
  if not nfn then ferr(F, "lib", "cannot be loaded: " .. err) end
  local sig = nfn:describe()
  local tuple = nfn:args_schema()
  local items = tuple.prefixItems
  local params, names, fixed = nil, nil, {}
  if spec.args ~= nil then
    if type(spec.args) ~= "table" or #spec.args ~= #items then
      nfn:close()
      ferr(F, "args", string.format("must name each of the %d arguments of %s", #items, sig))
    end
    local props, required = {}, {}
    names = {}
    for i, a in ipairs(spec.args) do
      local name, desc, value = a, nil, nil
      if type(a) == "table" then name, desc, value = a.name, a.description, a.value end
      if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") or props[name] or names[name] then
        nfn:close()
        ferr(F, "args", "[" .. i .. "] must be a unique identifier (or {name=, description=})")
      end
      names[i] = name
      names[name] = true
      if value ~= nil then
        fixed[i] = value
      else
        local s = items[i]
        s.description = desc or s.description
        props[name] = s
        required[#required + 1] = name
      end
    end
    params = { type = "object", properties = props, required = #required > 0 and required or nil,
               additionalProperties = false }
  elseif #items == 0 then
    params = { type = "object", properties = {}, additionalProperties = false }
  else
    tuple.description = "The arguments of " .. sig .. ", in order"
    params = { type = "object", properties = { args = tuple }, required = { "args" }, additionalProperties = false }
  end

  local function fn(args)
    local list = {}
    if names then
      for i = 1, #items do
        if fixed[i] ~= nil then list[i] = fixed[i] else list[i] = args[names[i]] end
      end
    elseif #items > 0 then
      list = args.args
    end
    local r, msg = nfn(table.unpack(list, 1, #items))
    if r == nil then return nil, msg end
    if shape then r = shape(r) end
    if type(r) == "table" then r["return"] = exact(r["return"]) end
    return exact(r)
  end

  return make(spec, {
    name = spec.symbol,
    description = "Calls the native function " .. sig .. ".",
    params = params,
    fn = fn,
    effect = "pure",
    close = function() nfn:close() end,
  })
end
