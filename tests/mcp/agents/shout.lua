-- An agent: run(args) -> answer. Served as an at-most-once MCP tool.
return {
  name = "shout", description = "Answers the question in capitals.",
  run = function(args)
    luact.sleep(0) -- it waits like any agent
    return args.question:upper()
  end,
}
