"""PSPNet forward time and peak memory on CPU (GRAPH and PYNATIVE), one fresh process per mode.

Usage (from the repository folder): python -m benchmarks.bench_forward [--layers 50] [--size 473] [--repeats 3] [--json out.json]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(mode: str, layers: int, size: int, repeats: int) -> dict:
    """Run in this process: build the eval network, time ``repeats`` forwards after one warm-up."""
    import numpy as np
    import mindspore as ms
    from src.device import setup_device
    from src.model.pspnet import PSPNet

    setup_device("CPU", mode)
    net = PSPNet(classes=21, layers=layers, use_aux=False)
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32))
    t0 = time.perf_counter()
    net(x).asnumpy()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net(x).asnumpy()
        times.append(time.perf_counter() - t0)
    return {"mode": mode, "layers": layers, "size": size, "first_call_s": round(first, 3),
            "median_s": round(sorted(times)[len(times) // 2], 3), "min_s": round(min(times), 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=50)
    p.add_argument("--size", type=int, default=473)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default="")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(measure(a.child, a.layers, a.size, a.repeats)))
        return
    rows = []
    for mode in ("GRAPH", "PYNATIVE"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_forward", "--child", mode, "--layers", str(a.layers),
                              "--size", str(a.size), "--repeats", str(a.repeats)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"PSPNet{a.layers} forward, 1x3x{a.size}x{a.size}, CPU ({os.cpu_count()} cores)")
    print(f"{'mode':10s} {'first call s':>12s} {'median s':>9s} {'min s':>7s} {'peak RSS GB':>11s}")
    for r in rows:
        print(f"{r['mode']:10s} {r['first_call_s']:12.3f} {r['median_s']:9.3f} {r['min_s']:7.3f} {r['peak_rss_gb']:11.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
