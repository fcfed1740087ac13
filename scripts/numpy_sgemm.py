#!/usr/bin/env python3
"""Times numpy's float32 matmul (OpenBLAS in the PyPI wheel) on the shapes ktune benches,
so that ktune can be compared with it side by side in one session.

    OPENBLAS_NUM_THREADS=1 python3 scripts/numpy_sgemm.py 1024x1024x1024 1x4096x4096

Shapes are MxNxK (C[m x n] = A[m x k] @ B[k x n]). Prints median and p05/p95 seconds and
GFLOP/s per shape, from repeated runs after a warm-up.
"""
import sys
import time

import numpy as np


def bench(m, n, k, budget=3.0):
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = np.empty((m, n), dtype=np.float32)
    for _ in range(3):
        np.matmul(a, b, out=c)
    times = []
    start = time.perf_counter()
    while len(times) < 10 or (time.perf_counter() - start < budget and len(times) < 1000):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t)
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * (len(times) - 1)))]
    return q(0.5), q(0.05), q(0.95), len(times)


def main():
    shapes = sys.argv[1:] or ["1024x1024x1024"]
    print("shape,median_s,p05_s,p95_s,samples,gflops")
    for s in shapes:
        m, n, k = (int(x) for x in s.lower().split("x"))
        med, p05, p95, cnt = bench(m, n, k)
        print(f"{s},{med:.6f},{p05:.6f},{p95:.6f},{cnt},{2 * m * n * k / med / 1e9:.1f}")


if __name__ == "__main__":
    main()
