-- Two long-running tools: one reports progress, one waits until it is
-- cancelled (its to-be-closed guard writes a marker file when the
-- client's notifications/cancelled kills its task).
return {
  luact.tool {
    name = "count", description = "Counts to three, reporting progress.",
    fn = function(_, ctx)
      for i = 1, 3 do
        ctx.progress(i, 3, "step " .. i)
        luact.sleep(0)
      end
      return "counted"
    end,
  },
  luact.tool {
    name = "wait", description = "Waits a long time.", effect = "idempotent",
    params = { type = "object", properties = { marker = { type = "string" } }, required = { "marker" } },
    fn = function(a, ctx)
      local guard <close> = setmetatable({}, { __close = function()
        local f = io.open(a.marker, "w")
        if f then f:write("cancelled") f:close() end
      end })
      ctx.progress(0, 1, "started")
      luact.sleep(60)
      return "waited"
    end,
  },
}
