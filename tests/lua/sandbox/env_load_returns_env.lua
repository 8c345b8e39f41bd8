-- expect: ok: true
return load("return _ENV")() == _G
