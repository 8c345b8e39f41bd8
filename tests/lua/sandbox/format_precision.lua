-- expect: ok: 409
-- the widest legal conversion stays small
return #string.format("%99.99f", 1e308)
