-- expect: error: boom in close
do
  local x <close> = setmetatable({}, { __close = function() error("boom in close") end })
end
