-- A tool still running when the client closes stdin (check_mcp_serve's
-- answers_after_stdin_closes): its answer must still be written.
return {
  luact.tool { name = "slow", description = "Answers after a while.",
    fn = function() luact.sleep(1) return "slept" end },
}
