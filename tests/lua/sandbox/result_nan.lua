-- expect: bad_result: NaN
return 0/0
