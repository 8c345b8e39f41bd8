"""hnswlib (Debian's python3-hnswlib) on the same vectors and ground truth
as bench_vindex.c: build rate, per-query latency (p50, p99) and recall@10
per ef with the ann-benchmarks tie rule. One thread, like luact's build."""
import json, sys, time
import numpy as np
import hnswlib

d = int(sys.argv[1])
base = np.fromfile(sys.argv[2], dtype="<f4").reshape(-1, d)
qs = np.fromfile(sys.argv[3], dtype="<f4").reshape(-1, d)
gt = [l.split() for l in open(sys.argv[4])]
thr = np.array([float(g[0]) for g in gt])
m, efc = int(sys.argv[5]), int(sys.argv[6])
efs = [int(e) for e in sys.argv[7:]]
idx = hnswlib.Index(space="cosine", dim=d)
idx.set_num_threads(1)
idx.init_index(max_elements=len(base), M=m, ef_construction=efc, random_seed=42)
t = time.perf_counter()
for i in range(len(base)):  # one at a time, as luact adds
    idx.add_items(base[i:i + 1], [i])
build = time.perf_counter() - t
out = {"n": len(base), "dims": d, "m": m, "ef_construction": efc, "build_s": round(build, 3),
       "build_per_s": round(len(base) / build), "hnsw": []}
for ef in efs:
    idx.set_ef(ef)
    lat, hit = [], 0
    for q in range(len(qs)):
        a = time.perf_counter()
        labels, dist = idx.knn_query(qs[q:q + 1], k=10)
        lat.append((time.perf_counter() - a) * 1e3)
        hit += int((dist[0] <= thr[q]).sum())
    lat.sort()
    out["hnsw"].append({"ef": ef, "recall": round(hit / (len(qs) * 10), 4),
                        "p50_ms": round(lat[len(lat) // 2], 4), "p99_ms": round(lat[len(lat) * 99 // 100], 4)})
print(json.dumps(out))
