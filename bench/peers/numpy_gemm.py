"""GEMM peer for bench/gemm.ts: numpy's matmul (OpenBLAS) on the same shapes.

Usage: python3 numpy_gemm.py '<json>' where json = {"shapes": [[m, k, n], ...], "reps": R, "min_time": s}
  or:  python3 numpy_gemm.py --serve   then one such JSON object per stdin line (the benchmark keeps
       one peer process per thread count and interleaves its shapes with ours, so both sides see
       the same machine load on a shared host).
Prints one JSON object per shape: {"m", "k", "n", "gflops", "threads", "numpy", "blas"}.
Threads come from OPENBLAS_NUM_THREADS, set by the caller per run (the pool size is fixed at import).
Timing: best of R repetitions, each repeating the product until it lasts min_time seconds, like the
TypeScript side. bench/gemm.ts asks for R = 1 at a time and alternates with its own samples.
"""
import json
import os
import sys
import time

import numpy as np


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg.get("Build Dependencies", {}).get("blas", {})
        return f'{b.get("name", "?")} {b.get("version", "")}'.strip()
    except Exception:  # older numpy: no dict mode
        return "unknown"


_cache = {}


def run(spec):
    reps = int(spec.get("reps", 5))
    min_time = float(spec.get("min_time", 0.2))
    blas = blas_name()
    for m, k, n in spec["shapes"]:
        # Operands and the repeat count are kept per shape, so the caller can ask for one sample at a
        # time (interleaved with its own samples) without paying set-up again.
        key = (m, k, n, min_time)
        if key not in _cache:
            rng = np.random.default_rng(0)
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            c = np.empty((m, n), dtype=np.float32)
            np.matmul(a, b, out=c)  # warm-up (page faults, thread start)
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            one = time.perf_counter() - t0
            _cache.clear()  # keep one shape's operands alive at a time
            _cache[key] = (a, b, c, max(1, int(min_time / max(one, 1e-9))))
        a, b, c, inner = _cache[key]
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                np.matmul(a, b, out=c)
            best = min(best, (time.perf_counter() - t0) / inner)
        print(json.dumps({"m": m, "k": k, "n": n, "gflops": 2.0 * m * n * k / best / 1e9,
                          "threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
                          "numpy": np.__version__, "blas": blas}), flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        print(json.dumps({"ready": True, "numpy": np.__version__, "blas": blas_name()}), flush=True)
        for line in sys.stdin:
            if line.strip():
                run(json.loads(line))
    elif len(sys.argv) > 1:
        run(json.loads(sys.argv[1]))
    else:
        sys.exit("usage: numpy_gemm.py '<json spec>' | --serve")


if __name__ == "__main__":
    main()
