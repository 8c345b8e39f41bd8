"""hnswlib's query cost alone in thread CPU time, the counterpart of
bench_vindex_query.c: DIMS BASE QUERIES INDEX GT EF... (builds and saves
INDEX when missing; GT from bench_vindex_query)."""
import os, sys, time
import numpy as np
import hnswlib

d = int(sys.argv[1])
base = np.fromfile(sys.argv[2], dtype="<f4").reshape(-1, d)
qs = np.fromfile(sys.argv[3], dtype="<f4").reshape(-1, d)
thr = np.array([float(l) for l in open(sys.argv[5])])
idx = hnswlib.Index(space="cosine", dim=d)
if os.path.exists(sys.argv[4]):
    idx.load_index(sys.argv[4], max_elements=len(base))
else:
    idx.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=42)
    idx.set_num_threads(1)
    for i in range(len(base)):
        idx.add_items(base[i:i + 1], [i])
    idx.save_index(sys.argv[4])
idx.set_num_threads(1)
for ef in [int(a) for a in sys.argv[6:]]:
    idx.set_ef(ef)
    lat, hit, tot = [], 0, 0.0
    for rep in range(3):
        for q in range(len(qs)):
            a = time.thread_time()
            labels, dist = idx.knn_query(qs[q:q + 1], k=10)
            t = (time.thread_time() - a) * 1e3
            tot += t
            if rep == 0:
                hit += int((dist[0] <= thr[q]).sum())
                lat.append(t)
    lat.sort()
    print("ef %d recall %.4f p50 %.4f mean %.4f" % (ef, hit / (len(qs) * 10), lat[len(lat) // 2],
                                                    tot / len(qs) / 3))
