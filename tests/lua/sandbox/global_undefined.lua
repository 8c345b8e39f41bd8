-- expect: error: undefined global 'undefined_thing'
return undefined_thing
