-- expect: bad_result: UTF-8
return "\xff\xfe"
