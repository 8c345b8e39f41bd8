-- A tool still running when the client closes stdin (check_mcp_serve's
-- answers_after_stdin_closes): its answer must still be written.
return {
  luact.tool { name = "slow", description = "Answers after a while.",
    fn = function() luact.sleep(1) return "slept" end },
  -- waits for the client, which closed its end: told so, it answers
  luact.tool { name = "asks", description = "Asks the client.",
    fn = function(_, ctx)
      local r, e = ctx.elicit("name?", { type = "object", properties = { n = { type = "string" } } })
      return "asked: " .. tostring(r and r.action) .. " " .. tostring(e)
    end },
}
