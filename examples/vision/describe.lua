-- examples/vision: describe an image. Offline: ./run-offline.sh
-- With a key: LUACT_MODEL=openai-responses:gpt-4o-mini (or openai:gpt-4o-mini,
-- anthropic:claude-sonnet-4-0, ollama:llava, gemini:gemini-2.5-flash with
-- GEMINI_API_KEY, bedrock:us.anthropic.claude-sonnet-4-6 with the AWS
-- variables) luact run examples/vision/describe.lua [IMAGE]
-- IMAGE is a file path, an https:// URL or a data: URL (default: the red dot here).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local image = (arg and arg[1]) or os.getenv("LUACT_IMAGE") or (here .. "red-dot.png")
local r, msg, code = luact.llm.chat{
  model = os.getenv("LUACT_MODEL") or "openai-responses:gpt-4o-mini",
  system = "Describe images in one short sentence.",
  prompt = "What is in this image?",
  images = { { path = not image:match("^%a+:") and image or nil,
               url = image:match("^%a+:") and image or nil, detail = "low" } },
  max_tokens = 100,
}
if not r then
  print("failed: " .. code .. ": " .. msg)
  return { status = "failed" }
end
print(r.text)
print(string.format("(tokens: %d in, %d out)", r.usage.input, r.usage.output))
return r.text
