-- expect: error: 'dofile' is not available
return dofile("/etc/passwd")
