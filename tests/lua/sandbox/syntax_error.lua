-- expect: syntax: unexpected symbol
return 1 +
