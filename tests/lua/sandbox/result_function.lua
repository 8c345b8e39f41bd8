-- expect: bad_result: cannot encode a function
return { f = print }
