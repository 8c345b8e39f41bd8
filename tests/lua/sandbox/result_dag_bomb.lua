-- expect: bad_result: too large
-- 60 levels of {t, t}: tiny in memory, 2^60 nodes as JSON
local t = { 1 }
for i = 1, 60 do t = { t, t } end
return t
