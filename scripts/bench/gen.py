"""Seeded clustered vectors: 100 centres ~ N(0, 1), points at spread 0.35."""
import sys
import numpy as np
n, nq, d, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(seed)
c = rng.standard_normal((100, d)).astype("<f4")
def pts(k):
    return (c[rng.integers(0, 100, k)] + 0.35 * rng.standard_normal((k, d))).astype("<f4")
pts(n).tofile(sys.argv[5])
pts(nq).tofile(sys.argv[6])
