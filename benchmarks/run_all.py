"""All benchmarks in one run; writes benchmarks/results.md and benchmarks/results.json.

Each measurement runs in its own process (clean peak-memory figures), one at a time.  With PyTorch at hand
(``.venv-torch``, or --torch-python), inference and the training steps alternate between the frameworks
(MindSpore, PyTorch, MindSpore, PyTorch: --rounds 2), each with one thread per core, and the report gives
every round's ratio, each framework's thread count and peak RSS, and the CPU model and vector flags.
Usage (from the repository folder): python -m benchmarks.run_all [--quick] [--rounds 2] [--out benchmarks]
  --quick: small sizes, single repeats, one round (a smoke run, not for reporting)
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from src.system.device import peak_rss_gb, rss_gb  # noqa: F401 - the one memory reading (memory_probe, torch_peer)
from src.outputs.atomic import write_json, write_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_info() -> dict:
    """The CPU model, core count and the vector flags that decide which kernels the libraries pick."""
    model, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return {"model": model, "cores": os.cpu_count(),
            "flags": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"})}


def child_main(children: dict, argv: list) -> None:
    """Run one named measurement in this process and print its result as one JSON line (digits become ints)."""
    name, *args = argv
    print(json.dumps(children[name](*[int(v) if v.isdigit() else v for v in args])))


def run_child(python: str, module: str, name: str, args, env: dict = None) -> subprocess.CompletedProcess:
    """``python -m <module> --child <name> <args>`` from the repository folder, output captured."""
    return subprocess.run([python, "-m", module, "--child", name, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env)


def probe_arguments(p: argparse.ArgumentParser) -> None:
    """The options every benchmark script shares: the PyTorch interpreter, the report folder, the child call."""
    p.add_argument("--torch-python", default=os.path.join(ROOT, ".venv-torch", "bin", "python"),
                   help="an interpreter with torch for the side-by-side PyTorch figures (skipped if absent)")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks"))
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)


def save_report(out: str, stem: str, r: dict, text: str) -> None:
    """Write ``<stem>.json`` (the figures) and ``<stem>.md`` (the report) into ``out``; print the report."""
    write_json(os.path.join(out, stem + ".json"), r)
    write_text(os.path.join(out, stem + ".md"), text)
    print(text)


def _median_s(fn, repeats: int, calls: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timings of ``calls`` calls each, after a warm-up."""
    fn()  # warm-up / compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return sorted(times)[len(times) // 2]


def _timed(fn, repeats: int) -> float:
    return round(_median_s(fn, repeats), 3)


SWEEP = (256, 512, 1024, 2048, 3072, 4096)  # square float32 GEMM sizes for the practical peak


def bench_gemm_sweep(repeats: int, *sizes: int) -> dict:
    """float32 GEMM GFLOP/s per size: numpy's BLAS and MindSpore's MatMul (oneDNN, capped at AVX2 here)."""
    import numpy as np
    import mindspore as ms
    from mindspore import ops
    from src.system.device import setup_device

    setup_device("CPU", "PYNATIVE")
    out = {"numpy": {}, "mindspore": {}}
    for n in sizes or SWEEP:
        x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        a = ms.Tensor(x)
        flop, calls = 2 * n ** 3, max(1, 2 ** 28 // n ** 3)  # small sizes: several calls per timing
        out["numpy"][str(n)] = round(flop / _median_s(lambda: x @ x, max(repeats, 3), calls) / 1e9, 1)
        out["mindspore"][str(n)] = round(flop / _median_s(lambda: ops.matmul(a, a).asnumpy(), max(repeats, 3), calls)
                                         / 1e9, 1)
    return out


def theoretical_peak() -> dict:
    """float32 peak from the CPU's clock, cores and vector width: cores x GHz x lanes x 2 (FMA) x FMA units.

    Two FMA units per core is an assumption (Xeon Scalable server parts; some SKUs have one for AVX-512).
    The clock is the one /proc/cpuinfo reports (nominal in a VM; turbo may be higher).
    """
    info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    flags = next((line.split(":")[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ghz = round(max(mhz) / 1000, 3) if mhz else None
    out = {"cores": cores, "ghz": ghz, "fma_units_assumed": 2, "avx512f": "avx512f" in flags, "avx2": "avx2" in flags,
           "amx": "amx_tile" in flags or "amx" in " ".join(flags)}
    if ghz:
        out["avx512_gflops"] = round(cores * ghz * 16 * 2 * 2, 1) if out["avx512f"] else None
        out["avx2_gflops"] = round(cores * ghz * 8 * 2 * 2, 1) if out["avx2"] else None
    return out


def torch_peer(torch_python: str, part: str, *args: int) -> dict:
    """One part of benchmarks/torch_peer.py (gemm, inference, train) with another interpreter, or {} without one."""
    if not torch_python or not os.path.exists(torch_python):
        return {}
    out = subprocess.run([torch_python, "-m", "benchmarks.torch_peer", part, *map(str, args)], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"torch peer ({part}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ms_threads() -> int:
    import mindspore as ms

    return int(ms.get_context("runtime_num_threads"))


def _ort_session(path: str, threads: int, level: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, "ORT_ENABLE_" + level)
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def bench_inference(size: int, repeats: int) -> dict:
    """PSPNet50 eval network at size x size: MindSpore GRAPH Cell, reloaded MINDIR, ONNX Runtime."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn
    import onnxruntime as ort
    from src.system.device import setup_device
    from src.model.pspnet import PSPNet

    setup_device("CPU", "GRAPH")
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    net = PSPNet(classes=21, layers=50, use_aux=False)
    net.set_train(False)
    out = {"size": size, "ms_graph_s": _timed(lambda: net(ms.Tensor(x)).asnumpy(), repeats)}
    out["ms_graph_peak_rss_gb"] = peak_rss_gb(2)  # before the export and the other runtimes
    from src.deploy.export import export_files

    with tempfile.TemporaryDirectory() as d:
        export_files(lambda base: ms.export(net, ms.Tensor(x), file_name=base, file_format="MINDIR"),
                     os.path.join(d, "m.mindir"))
        cell = nn.GraphCell(ms.load(os.path.join(d, "m.mindir")))
        out["mindir_s"] = _timed(lambda: cell(ms.Tensor(x)).asnumpy(), repeats)
        fixed = PSPNet(classes=21, layers=50, use_aux=False, static_hw=(size, size))
        for a, b in zip(net.get_parameters(), fixed.get_parameters()):
            b.set_data(a.data.copy())
        fixed.set_train(False)
        export_files(lambda base: ms.export(fixed, ms.Tensor(x), file_name=base, file_format="ONNX"),
                     os.path.join(d, "m.onnx"))
        cores = os.cpu_count() or 1
        for key, threads, level in (("onnxruntime_s", cores, "ALL"), ("onnxruntime_1thread_s", 1, "ALL"),
                                    ("onnxruntime_basic_s", cores, "BASIC")):
            sess = _ort_session(os.path.join(d, "m.onnx"), threads, level)
            name = sess.get_inputs()[0].name
            out[key] = _timed(lambda: sess.run(None, {name: x}), repeats)
        out["ort_threads"], out["onnxruntime"] = cores, ort.__version__
    out["ms_threads"] = _ms_threads()
    out["peak_rss_gb"] = peak_rss_gb(2)
    return out


def bench_train(crop: int, steps: int, lean: int = 1) -> dict:
    """PSPNet50 training step (batch 2, with aux, TrainOneStep-style cell, GRAPH) on random data, with the lean
    convolution backward the project trains with on CPU (``lean``) or MindSpore's own."""
    import numpy as np
    import mindspore as ms
    from src.system.device import setup_device
    from src.model.pspnet import PSPNet
    from src.train.lr import build_optimizer
    from src.train.step import NetWithLoss, TrainStep

    setup_device("CPU", "GRAPH")
    net = PSPNet(classes=21, layers=50)
    if lean:
        from src.model.lean import lean_backward

        lean_backward(net)
    step = TrainStep(NetWithLoss(net), build_optimizer(net, 0.01, 1000))
    step.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, 3, crop, crop)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 21, (2, crop, crop)).astype(np.int32))
    s = _timed(lambda: step(x, y)[0].asnumpy(), steps)
    return {"crop": crop, "batch": 2, "s_per_step": s, "peak_rss_gb": peak_rss_gb(2), "ms_threads": _ms_threads(),
            "lean_backward": bool(lean)}


def bench_step_loop(crop: int, steps: int) -> dict:
    """The training loop's host work per step: losses and lr read every step (before) vs once per log window.

    Both loops drive the same compiled step cell on the same batches, alternating
    (ABAB) so machine noise falls on both; the median of the rounds is reported.
    """
    import numpy as np
    import mindspore as ms
    from src.system.device import setup_device
    from src.model.pspnet import PSPNet
    from src.train.lr import build_optimizer, current_lrs, lr_tables, lrs_at
    from src.train.loss_window import LossWindow, first_non_finite
    from src.train.step import NetWithLoss, TrainStep

    setup_device("CPU", "GRAPH")
    net = PSPNet(classes=21, layers=50)
    opt = build_optimizer(net, 0.001, 100000)
    step = TrainStep(NetWithLoss(net), opt)
    step.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, 3, crop, crop)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 21, (2, crop, crop)).astype(np.int32))
    tables, log_every = lr_tables(opt), 10

    def every_step():  # the loop as it was: three asnumpy and a device lr read per step
        for _ in range(steps):
            current_lrs(opt)
            total, main, aux = (v.asnumpy().item() for v in step(x, y))
            assert np.isfinite(total)

    def windowed():  # the loop now: losses kept on the device, read once per log_every steps
        window = LossWindow()
        for i in range(1, steps + 1):
            window.add(i, 1, step(x, y))
            if i % log_every == 0 or i == steps:
                assert first_non_finite(window.fetch()) is None
                lrs_at(tables, i - 1)

    step(x, y)[0].asnumpy()  # compile
    before, after = [], []
    for _ in range(3):
        for fn, out in ((every_step, before), (windowed, after)):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) / steps)
    med = lambda v: round(sorted(v)[len(v) // 2], 4)  # noqa: E731
    return {"crop": crop, "batch": 2, "steps": steps, "log_every": log_every, "fetch_every_step_s": med(before),
            "fetch_per_window_s": med(after), "ratio": round(med(after) / med(before), 3)}


def bench_eval_image(repeats: int) -> dict:
    """eval.py's protocol on one 500x375 image (VOC size), single scale + flip: batch 4 vs one window at a time."""
    import numpy as np
    import mindspore as ms
    from src.system.device import setup_device
    from src.evaluation.protocol import Protocol, segment
    from src.model.pspnet import PSPNet

    setup_device("CPU", "GRAPH")
    net = PSPNet(classes=21, layers=50, use_aux=False)
    net.set_train(False)
    image = np.random.default_rng(0).uniform(0, 255, (375, 500, 3)).astype(np.float32)

    def predict(b):
        return net(ms.Tensor(b)).asnumpy()

    out = {"image": "500x375", "windows_per_image": 4}
    for bs in (4, 1):
        p = Protocol(classes=21, batch_size=bs)
        out[f"batch{bs}_s_per_image"] = _timed(lambda: segment(image, predict, p), repeats)
    return out


def bench_data() -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_data", "--json",
                          os.path.join(tempfile.gettempdir(), "bench_data.json")], capture_output=True, text=True,
                         cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    rows = json.load(open(os.path.join(tempfile.gettempdir(), "bench_data.json")))
    return {f"workers_{r['workers']}_images_per_s": r["images_per_s"] for r in rows}


def _mean(rounds: list) -> dict:
    """The rounds' mean of every timing (keys ending in _s), the largest peak, the rest from the first round."""
    out = dict(rounds[0])
    for key, value in rounds[0].items():
        if isinstance(value, (int, float)) and (key.endswith("_s") or key.endswith("_per_step")):
            out[key] = round(sum(r[key] for r in rounds) / len(rounds), 3)
        elif "peak_rss" in key:
            out[key] = max(r[key] for r in rounds)
    return dict(out, rounds=rounds)


def side_by_side(torch_python: str, size: int, repeats: int, crops: list, rounds: int) -> dict:
    """MindSpore and PyTorch in alternating processes (A B A B ...): inference, then a training step per crop.

    Each process times its work after a warm-up (median of ``repeats``) and reports its own peak RSS; the
    report gives each round's ratio and the mean.  Without a PyTorch interpreter only MindSpore runs.
    """
    ms_inf, t_inf, ms_train, t_train = [], [], {c: [] for c in crops}, {c: [] for c in crops}
    for i in range(rounds):
        print(f"round {i + 1}/{rounds}: inference ...", flush=True)
        ms_inf.append(_child("inference", [size, repeats]))
        t_inf.append(torch_peer(torch_python, "inference", size, repeats))
        for crop in crops:
            print(f"round {i + 1}/{rounds}: training step, crop {crop} ...", flush=True)
            ms_train[crop].append(_child("train", [crop, repeats, 1]))
            t_train[crop].append(torch_peer(torch_python, "train", crop, repeats))
    out = {"rounds": rounds, "inference": _mean(ms_inf), "train": [_mean(ms_train[c]) for c in crops], "torch": {}}
    if t_inf[0]:
        out["torch"] = {"torch": t_inf[0]["torch"], "threads": t_inf[0]["threads"], "inference": _mean(t_inf),
                        "train": [_mean(t_train[c]) for c in crops]}
    return out


CHILDREN = {"gemm": bench_gemm_sweep, "inference": bench_inference, "train": bench_train,
            "eval_image": bench_eval_image, "step_loop": bench_step_loop}


def _child(name: str, args: list) -> dict:
    out = run_child(sys.executable, "benchmarks.run_all", name, args)
    if out.returncode:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_lines(r: dict) -> list:
    """The practical peak (GEMM size sweep, every library at hand), the theoretical one, and the network as
    fractions of both and beside PyTorch measured in the same run."""
    g, th, tp, inf = r["gemm"], r["theory"], r.get("torch", {}), r["inference"]
    libs = [("numpy (BLAS)", g["numpy"]), ("MindSpore MatMul", g["mindspore"])]
    if tp:
        libs.append((f"torch.mm ({tp['torch']})", tp["gemm_gflops"]))
    sizes = list(g["numpy"])
    lines = ["## Peak: what this CPU can do, and how close the network gets", "",
             "float32 GEMM, n x n times n x n, GFLOP/s (median of repeats):", "",
             "| n | " + " | ".join(name for name, _ in libs) + " |", "|---" * (len(libs) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(str(v.get(n, "-")) for _, v in libs) + " |" for n in sizes]
    best_lib, best = max(((name, max(v.values())) for name, v in libs), key=lambda t: t[1])
    flop = 2 * 161.6e9 * (inf["size"] / 473) ** 2
    lines += ["", f"Practical peak: {best} GFLOP/s ({best_lib}, best size). Theoretical float32 peak from the CPU: "
              f"{th['cores']} cores x {th['ghz']} GHz x 16 lanes (AVX-512) x 2 (FMA) x {th['fma_units_assumed']} FMA "
              f"units = {th.get('avx512_gflops') or '- (this CPU has no AVX-512)'} GFLOP/s; with AVX2 (8 lanes; MindSpore's oneDNN is held to AVX2 on "
              f"CPU, see the README's set-up notes) {th.get('avx2_gflops')} GFLOP/s. Two FMA units per core is an assumption (server "
              f"Xeons); the clock is the nominal one /proc/cpuinfo reports.", "",
              f"PSPNet-50 forward at {inf['size']}x{inf['size']} ({flop / 1e9:.1f} GFLOP):", "",
              "| | time | GFLOP/s | of the practical peak | of the theoretical AVX-512 / AVX2 peak |",
              "|---|---|---|---|---|"]
    rows = [("MindSpore GRAPH", inf["ms_graph_s"]), ("ONNX Runtime (our export)", inf["onnxruntime_s"])]
    if tp:
        rows.append((f"PyTorch {tp['torch']} (same network, benchmarks/torch_peer.py)", tp["inference"]["inference_s"]))
    for name, s in rows:
        gf = flop / s / 1e9
        share = " / ".join(f"{100 * gf / th[k]:.0f}%" if th.get(k) else "-" for k in ("avx512_gflops", "avx2_gflops"))
        lines.append(f"| {name} | {s} s | {gf:.1f} | {100 * gf / best:.0f}% | {share} |")
    fastest = max(flop / s / 1e9 for _, s in rows)
    if fastest > min(best, th.get("avx2_gflops") or best):
        lines += ["", "A rate above a peak is possible: GFLOP/s here counts a direct convolution's multiply-adds, "
                  "so a library that convolves with fewer (Winograd / FFT-style kernels) or a core clocked above "
                  "the nominal GHz (turbo; a VM reports the nominal one) beats the GEMM and nominal-clock figures."]
    if not tp:
        lines += ["", "No PyTorch peer in this run (make .venv-torch with torch, or pass --torch-python)."]
    return lines + [""]


def _backward_note(r: dict) -> str:
    if r["train"] and r["train"][0].get("lean_backward"):
        return ("MindSpore's training steps use the lean convolution backward (train.lean_backward, the project's "
                "CPU default); benchmarks/memory.md compares it with MindSpore's own.")
    return ("MindSpore's training steps use its own convolution backward (train.lean_backward off); the lean one, "
            "the project's CPU default, is in benchmarks/memory.md.")


def side_by_side_lines(r: dict) -> list:
    """MindSpore / PyTorch per round and their mean, with each framework's thread count and peak RSS."""
    tp, inf = r.get("torch"), r["inference"]
    if not tp:
        return []
    ratio = lambda a, b, key_a, key_b: [x[key_a] / y[key_b] for x, y in zip(a["rounds"], b["rounds"])]  # noqa: E731
    rows = [(f"inference 1x3x{inf['size']}x{inf['size']}", inf["ms_graph_s"], tp["inference"]["inference_s"],
             ratio(inf, tp["inference"], "ms_graph_s", "inference_s"), inf["ms_graph_peak_rss_gb"],
             tp["inference"]["peak_rss_gb"])]
    for ms_t, t_t in zip(r["train"], tp["train"]):
        rows.append((f"training step, batch 2, crop {ms_t['crop']}, with aux", ms_t["s_per_step"], t_t["s_per_step"],
                     ratio(ms_t, t_t, "s_per_step", "s_per_step"), ms_t["peak_rss_gb"], t_t["peak_rss_gb"]))
    lines = [f"## MindSpore vs PyTorch, same run ({r['rounds']} rounds, processes alternating)", "",
             f"Threads: MindSpore {inf.get('ms_threads', '?')} (runtime_num_threads), PyTorch {tp['threads']} "
             f"(torch.set_num_threads, set to the core count). Times are the mean over rounds of each process's "
             f"median after a warm-up; peak RSS is the largest of the rounds (the inference process is measured "
             f"before it exports). {_backward_note(r)}", "",
             "| work | MindSpore GRAPH | PyTorch " + tp["torch"] + " | MindSpore / PyTorch (each round) | "
             "peak RSS MindSpore / PyTorch |", "|---|---|---|---|---|"]
    for name, a, b, each, pa, pb in rows:
        lines.append(f"| {name} | {a} s | {b} s | {a / b:.2f}x ({', '.join(f'{v:.2f}' for v in each)}) | "
                     f"{pa} / {pb} GB |")
    return lines + [""]


def onnx_lines(r: dict) -> list:
    """ONNX Runtime's CPU provider on the exported network, under the settings that change its speed."""
    inf, tp = r["inference"], r.get("torch")
    if "onnxruntime_1thread_s" not in inf:
        return []
    torch_s = tp["inference"]["inference_s"] if tp else None
    lines = [f"## ONNX Runtime {inf.get('onnxruntime', '')} on the exported network (fixed-size form)", "",
             "| session options | s | / MindSpore GRAPH | / PyTorch |", "|---|---|---|---|"]
    for key, label in (("onnxruntime_s", f"intra_op_num_threads={inf['ort_threads']}, ORT_ENABLE_ALL (the project's)"),
                       ("onnxruntime_1thread_s", "intra_op_num_threads=1, ORT_ENABLE_ALL"),
                       ("onnxruntime_basic_s", f"intra_op_num_threads={inf['ort_threads']}, ORT_ENABLE_BASIC")):
        vs_torch = f"{inf[key] / torch_s:.2f}x" if torch_s else "-"
        lines.append(f"| {label} | {inf[key]} | {inf[key] / inf['ms_graph_s']:.2f}x | {vs_torch} |")
    return lines + [""]


def write_markdown(r: dict, path: str) -> None:
    inf, cpu = r["inference"], r.get("cpu", {})
    cpu_line = (f"CPU: {cpu['model']}, {cpu['cores']} cores, vector flags {' '.join(cpu['flags']) or 'none listed'}. "
                if cpu else "")
    lines = [f"# Benchmarks ({r['machine']})", "",
             f"Measured {r['date']} with MindSpore {r['mindspore']}, one process at a time, "
             f"median of repeats after a warm-up. PSPNet50, 21 classes, random weights. {cpu_line}", "",
             *side_by_side_lines(r),
             f"## Inference, 1x3x{inf['size']}x{inf['size']}", "",
             "| MindSpore GRAPH (Cell) | MINDIR (ms.load + GraphCell) | ONNX Runtime | peak RSS |", "|---|---|---|---|",
             f"| {inf['ms_graph_s']} s | {inf['mindir_s']} s | {inf['onnxruntime_s']} s | {inf['peak_rss_gb']} GB |", "",
             *onnx_lines(r),
             *peak_lines(r),
             "## Training step (batch 2, with aux, GRAPH)", "",
             _backward_note(r), "",
             "| crop | s/step | peak RSS |", "|---|---|---|"]
    lines += [f"| {t['crop']} | {t['s_per_step']} | {t['peak_rss_gb']} GB |" for t in r["train"]]
    if "step_loop" in r:
        s = r["step_loop"]
        when = f", measured {s['date']}" if "date" in s else ""
        lines += ["", f"## Step loop host work (crop {s['crop']}, batch 2, {s['steps']} steps, 3 alternating rounds{when})",
                  "",
                  "| losses + lr read every step (before) | losses read once per log window of "
                  f"{s['log_every']} (now) | now / before |", "|---|---|---|",
                  f"| {s['fetch_every_step_s']} s/step | {s['fetch_per_window_s']} s/step | {s['ratio']} |", "",
                  "On CPU the device is the host, so the gain is small; on Ascend each read is a host-device "
                  "synchronization, which the window removes from 9 of every 10 steps."]
    e = r["eval_image"]
    lines += ["", "## eval.py protocol on one VOC-sized image (500x375, single scale, flip)", "",
              "| windows batched (4) | one window at a time |", "|---|---|",
              f"| {e['batch4_s_per_image']} s/image | {e['batch1_s_per_image']} s/image |", "",
              "## Training data pipeline (synthetic 500x375 JPEG -> crop 473, full augmentation)", "",
              "| 1 worker | 2 workers |", "|---|---|",
              f"| {r['data']['workers_1_images_per_s']} images/s | {r['data']['workers_2_images_per_s']} images/s |", ""]
    write_text(path, "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=2, help="alternating MindSpore / PyTorch rounds (full run)")
    probe_arguments(p)
    p.add_argument("--render", action="store_true", help="rewrite results.md from results.json")
    a = p.parse_args()
    if a.child:
        child_main(CHILDREN, a.child)
        return
    if a.render:
        r = json.load(open(os.path.join(a.out, "results.json")))
        write_markdown(r, os.path.join(a.out, "results.md"))
        return
    import mindspore

    q = a.quick
    r = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "cpu": cpu_info(),
         "date": time.strftime("%Y-%m-%d"), "mindspore": mindspore.__version__}
    r["theory"] = theoretical_peak()
    print("running gemm sweep ...", flush=True)
    sweep = [256, 1024] if q else list(SWEEP)
    r["gemm"] = _child("gemm", [1] + sweep)
    r.update(side_by_side(a.torch_python, 97 if q else 473, 1 if q else 3, [97] if q else [97, 473],
                          1 if q else max(1, a.rounds)))
    if r["torch"]:
        r["torch"].update(torch_peer(a.torch_python, "gemm", 1, *sweep))
    print("running step_loop ...", flush=True)
    r["step_loop"] = _child("step_loop", [65 if q else 97, 4 if q else 20])
    print("running eval_image ...", flush=True)
    r["eval_image"] = _child("eval_image", [1 if q else 2])
    print("running data pipeline ...", flush=True)
    r["data"] = bench_data()
    write_json(os.path.join(a.out, "results.json"), r)
    write_markdown(r, os.path.join(a.out, "results.md"))
    print(open(os.path.join(a.out, "results.md")).read())


if __name__ == "__main__":
    main()
