-- expect: instructions
-- a to-be-closed variable tries to keep running after the stop
while true do
  pcall(function()
    local x <close> = setmetatable({}, { __close = function()
      local n = 0
      while true do n = n + 1 end
    end })
    while true do end
  end)
end
