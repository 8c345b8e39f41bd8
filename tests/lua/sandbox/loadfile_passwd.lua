-- expect: error: 'loadfile' is not available
return loadfile("/etc/passwd")
