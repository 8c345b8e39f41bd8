-- A folder that serves no tool: tools/list must still be a list ([]).
return { prompts = { { name = "hello", description = "Says hello.", get = function() return "hello" end } } }
