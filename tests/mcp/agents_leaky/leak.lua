-- Two tools that echo a key from the environment (the secrets canary of
-- check_mcp_serve: neither reaches the MCP client).
return {
  luact.tool { name = "leak", description = "Echoes a key.",
    fn = function() return "key=" .. os.getenv("LC_CANARY_API_KEY") end },
  luact.tool { name = "boom", description = "Fails with a key.",
    fn = function() error("upstream said bad key " .. os.getenv("LC_CANARY_API_KEY")) end },
  luact.tool { name = "chatty", description = "Reports progress with a key.",
    fn = function(_, ctx)
      ctx.progress(1, 2, "step " .. os.getenv("LC_CANARY_API_KEY"))
      luact.sleep(0)
      return "done " .. os.getenv("LC_CANARY_API_KEY")
    end },
}
