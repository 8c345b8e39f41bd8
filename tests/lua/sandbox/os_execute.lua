-- expect: error: 'os' is not available
return os.execute("id")
