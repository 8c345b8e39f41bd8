-- expect: error: cannot create global 'sneaky'
_G.sneaky = true
