-- expect: error: 'os' is not available
-- time comes from the runtime, never from the sandbox
return os.time() + os.clock()
