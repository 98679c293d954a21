"""Where the training memory goes: MindSpore vs PyTorch, measured side by side in one run.

Every figure is one process's peak RSS above its state after building the network (so interpreter and
library overheads cancel), and its seconds per step after one warm-up step.  Processes run one at a time,
the frameworks interleaved (MindSpore, PyTorch, MindSpore, ...), both with 2 threads.

1. PSPNet-50 training step (batch B, crop C, with aux): MindSpore GRAPH as the project trains it, with
   recompute of layer3/layer4, in PYNATIVE mode; PyTorch (benchmarks/torch_peer.py's network).
2. The minimal reproduction: a chain of 20 convolutions (256 channels, 64x64, batch 2), one SGD step, in
   MindSpore GRAPH (3x3, 1x1, and a 3x3 forward alone) and PYNATIVE and in PyTorch, reported in units of one
   activation's size per conv.
3. The im2col matrices of PSPNet-50 at each crop (one image, every convolution larger than 1x1) beside the
   excess of MindSpore's step memory over PyTorch's: the report's last table.

Usage (from the repository folder):
  python -m benchmarks.memory_probe [--crops 233 353] [--batches 1 2] [--torch-python .venv-torch/bin/python]
  python -m benchmarks.memory_probe --append --crops 473 --batches 2 4 --variants graph   (replace/add those figures)
  python -m benchmarks.memory_probe --explain   (2. and 3. only, for the crops already measured)
Writes benchmarks/memory.md and benchmarks/memory.json.
"""
import argparse
import json
import os
import sys
import time

from benchmarks.conv_probe import conv_calls  # MindSpore imported inside: safe in the PyTorch interpreter too
from benchmarks.run_all import child_main, cpu_info, peak_rss_gb, probe_arguments, rss_gb, run_child, save_report

THREADS = 2


def _two_steps(step) -> float:
    step()
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def ms_pspnet(crop: int, batch: int, variant: str) -> dict:
    """One PSPNet-50 training step in MindSpore GRAPH mode with MindSpore's own backward (``graph``), the lean
    convolution backward the project trains with on CPU (``lean``), recompute of layer3-4, or ``pynative``."""
    import numpy as np
    import mindspore as ms
    from src.system.device import setup_device
    from src.model.lean import lean_backward
    from src.model.pspnet import PSPNet
    from src.train.lr import build_optimizer
    from src.train.step import NetWithLoss, TrainStep

    setup_device("CPU", "PYNATIVE" if variant == "pynative" else "GRAPH")
    net = PSPNet(classes=21, layers=50)
    if variant == "recompute":
        for stage in (net.layer3, net.layer4):
            for block in stage:
                block.recompute()
    if variant == "lean":  # what the project trains on CPU (train.lean_backward auto)
        lean_backward(net)
    step = TrainStep(NetWithLoss(net), build_optimizer(net, 0.01, 1000))
    step.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((batch, 3, crop, crop)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 21, (batch, crop, crop)).astype(np.int32))
    base = rss_gb()
    s = _two_steps(lambda: step(x, y)[0].asnumpy())
    return {"s": round(s, 2), "step_gb": round(peak_rss_gb() - base, 2), "peak_gb": round(peak_rss_gb(), 2)}


def torch_pspnet(crop: int, batch: int) -> dict:
    import torch
    from benchmarks.torch_peer import build_pspnet50

    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    net = build_pspnet50(aux=True).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    xb, yb = torch.randn(batch, 3, crop, crop), torch.randint(0, 21, (batch, crop, crop))
    ce = torch.nn.CrossEntropyLoss(ignore_index=255)

    def step():
        opt.zero_grad()
        main, aux = net(xb)
        (ce(main, yb) + 0.4 * ce(aux, yb)).backward()
        opt.step()

    base = rss_gb()
    s = _two_steps(step)
    return {"s": round(s, 2), "step_gb": round(peak_rss_gb() - base, 2), "peak_gb": round(peak_rss_gb(), 2),
            "threads": torch.get_num_threads()}


CHAIN = (20, 256, 64)  # convolutions, channels, height = width; batch 2


def ms_chain(mode: str, kernel: int = 3, train: int = 1, lean: int = 0) -> dict:
    """The chain in MindSpore: one SGD step (``train``) or one forward, ``kernel`` x ``kernel`` convolutions,
    with the lean input gradient (``lean``, src/model/lean.py) or MindSpore's own."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn
    from src.system.device import setup_device

    setup_device("CPU", mode)
    n, c, hw = CHAIN
    net = nn.SequentialCell([nn.Conv2d(c, c, kernel, pad_mode="pad" if kernel > 1 else "valid", padding=kernel // 2,
                                       has_bias=False) for _ in range(n)])
    if lean:
        from src.model.lean import lean_backward

        lean_backward(net)

    class Mean(nn.Cell):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def construct(self, x):
            return self.body(x).mean()

    if train:
        step = nn.TrainOneStepCell(Mean(net), nn.SGD(net.trainable_params(), 0.01, momentum=0.9))
    else:
        step = Mean(net)
    step.set_train(bool(train))
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, c, hw, hw)).astype(np.float32))
    base = rss_gb()
    _two_steps(lambda: step(x).asnumpy())
    return _per_conv(peak_rss_gb() - base)


def im2col_gb(crop: int) -> dict:
    """GB of one image's im2col matrices summed over PSPNet-50's convolutions larger than 1x1 (with aux).

    oneDNN's GEMM convolution (``x64:gemm:jit``, what MindSpore's CPU kernels get: they create the primitive on
    plain NCHW layouts) unfolds its input into a (C_in * kh * kw) x (H_out * W_out) matrix in a scratchpad that
    each primitive owns; this sums ``C_in * kh * kw * H_out * W_out * 4`` bytes over the network's convolutions.
    """
    calls = [c for c in conv_calls(crop, training=True) if c["kernel"] > 1]
    total = sum(c["in"] * c["kernel"] ** 2 * c["out_hw"][0] * c["out_hw"][1] * 4 for c in calls)
    return {"crop": crop, "gb": round(total / 2 ** 30, 3), "convolutions": len(calls)}


def torch_chain() -> dict:
    import torch

    torch.set_num_threads(THREADS)
    n, c, hw = CHAIN
    net = torch.nn.Sequential(*[torch.nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(n)])
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(2, c, hw, hw)

    def step():
        opt.zero_grad()
        net(x).mean().backward()
        opt.step()

    base = rss_gb()
    _two_steps(step)
    return _per_conv(peak_rss_gb() - base)


def _per_conv(step_gb: float) -> dict:
    n, c, hw = CHAIN
    activation_gb = 2 * c * hw * hw * 4 / 2 ** 30
    return {"step_gb": round(step_gb, 3), "activations_per_conv": round(step_gb / n / activation_gb, 1)}


CHILDREN = {"ms_pspnet": ms_pspnet, "torch_pspnet": torch_pspnet, "ms_chain": ms_chain, "torch_chain": torch_chain,
            "im2col": im2col_gb}


def _child(python: str, name: str, *args) -> dict:
    out = run_child(python, "benchmarks.memory_probe", name, args, env=dict(os.environ, GLOG_v="3"))
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1][:200] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(crops, batches, torch_python: str, variants=("graph", "recompute", "pynative"), chain: bool = True) -> dict:
    have_torch = bool(torch_python) and os.path.exists(torch_python)
    r = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_info(), "threads": THREADS, "pspnet": [], "chain": {}}
    for crop in crops:
        for batch in batches:
            row = {"crop": crop, "batch": batch}
            for variant in variants:
                print(f"MindSpore {variant} crop {crop} batch {batch} ...", flush=True)
                row[variant] = _child(sys.executable, "ms_pspnet", crop, batch, variant)
                if variant == "graph" and have_torch:  # interleaved: the PyTorch step right after the first
                    print(f"PyTorch crop {crop} batch {batch} ...", flush=True)
                    row["torch"] = _child(torch_python, "torch_pspnet", crop, batch)
            r["pspnet"].append(row)
    if chain:
        r.update(explain(crops, torch_python if have_torch else ""))
    return r


CHAIN_VARIANTS = (("graph", ("GRAPH", 3, 1)), ("graph_1x1", ("GRAPH", 1, 1)), ("graph_forward", ("GRAPH", 3, 0)),
                  ("graph_lean", ("GRAPH", 3, 1, 1)), ("pynative", ("PYNATIVE", 3, 1)))


def explain(crops, torch_python: str) -> dict:
    """The minimal reproduction's variants and the im2col sizes of PSPNet-50 at each crop."""
    print("minimal reproduction ...", flush=True)
    chain = {}
    for key, args in CHAIN_VARIANTS:
        chain[key] = _child(sys.executable, "ms_chain", *args)
        if key == "graph" and torch_python:
            chain["torch"] = _child(torch_python, "torch_chain")
    print("im2col sizes ...", flush=True)
    return {"chain": chain, "im2col": {str(c): _child(sys.executable, "im2col", c) for c in crops}}


def _error(text: str) -> str:
    if "Expected more than 1 value per channel" in text:  # PyTorch's BatchNorm on the PPM's 1x1 bin
        return "refused: BatchNorm of the 1x1 pyramid bin sees one value per channel"
    return "failed: " + text[:80]


def _cell(d: dict, key: str) -> str:
    return d.get("error", "-") if key not in d else str(d[key])


def markdown(r: dict) -> str:
    cpu = r["cpu"]
    lines = [f"# Training memory: MindSpore vs PyTorch ({r['date']})", "",
             f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags'])}; {r['threads']} threads in "
             f"both frameworks; one process at a time, interleaved. `step GB` = peak RSS during two training steps "
             f"above the state after building the network; `peak GB` = the whole process.", "",
             "## PSPNet-50 training step (with aux)", "",
             "| crop | batch | MindSpore GRAPH s / step GB / peak GB | + lean backward (the project's CPU default) | "
             "+ recompute layer3-4 | PYNATIVE | PyTorch | step GB / PyTorch's: GRAPH, lean |",
             "|---|---|---|---|---|---|---|---|"]
    for row in sorted(r["pspnet"], key=lambda row: (row["crop"], row["batch"])):
        cells = []
        for key in ("graph", "lean", "recompute", "pynative", "torch"):
            d = row.get(key, {})
            cells.append("-" if not d else _error(d["error"]) if "error" in d
                         else f"{d['s']} s / {d['step_gb']} / {d['peak_gb']}")
        t = row.get("torch", {})
        ratios = [f"{row[k]['step_gb'] / t['step_gb']:.2f}" if "step_gb" in row.get(k, {}) and t.get("step_gb")
                  else "-" for k in ("graph", "lean")]
        lines.append(f"| {row['crop']} | {row['batch']} | " + " | ".join(cells) + f" | {', '.join(ratios)} |")
    return "\n".join(lines + chain_lines(r) + im2col_lines(r)) + "\n"


def chain_lines(r: dict) -> list:
    n, c, hw = CHAIN
    ch = r["chain"]
    lines = ["", f"## Minimal reproduction: {n} convolutions, {c} channels, {hw}x{hw}, batch 2", "",
             "| | step GB | in activations per convolution |", "|---|---|---|"]
    for key, label in (("graph", "MindSpore GRAPH, 3x3, SGD step"), ("graph_1x1", "MindSpore GRAPH, 1x1, SGD step"),
                       ("graph_forward", "MindSpore GRAPH, 3x3, forward only"),
                       ("graph_lean", "MindSpore GRAPH, 3x3, SGD step, lean input gradient"),
                       ("pynative", "MindSpore PYNATIVE, 3x3, SGD step"), ("torch", "PyTorch, 3x3, SGD step")):
        if key in ch:
            lines.append(f"| {label} | {_cell(ch[key], 'step_gb')} | {_cell(ch[key], 'activations_per_conv')} |")
    return lines


def im2col_lines(r: dict) -> list:
    """The excess over PyTorch beside the size of the network's im2col matrices (one image, every conv > 1x1)."""
    sizes, ch = r.get("im2col", {}), r["chain"]
    per = [ch.get(k, {}).get("activations_per_conv") for k in ("graph", "graph_1x1")]
    if not sizes or None in per:
        return []
    col = 9 / 2  # one image's im2col matrix of a 3x3 conv, in activations of the batch-2 chain
    lines = ["", "## Where the excess is: the backward convolutions' im2col buffers", "",
             f"In the chain, a 3x3 convolution costs {per[0] - per[1]:.1f} activations more than a 1x1 one in a "
             f"GRAPH training step, {(per[0] - per[1]) / col:.1f} times its im2col matrix for one image "
             f"(C_in x 9 x H x W floats); a forward alone holds none of it. MindSpore's CPU convolution kernels "
             f"create oneDNN primitives on plain NCHW layouts, for which oneDNN picks its GEMM implementation "
             f"(`x64:gemm:jit`, with im2col, in the forward, backward-data and backward-weights passes: "
             f"ONEDNN_VERBOSE=1 shows it); PyTorch reorders to blocked layouts and gets `jit:avx2` (no im2col)."
             + (f" With the input gradient computed as a forward convolution (train.lean_backward) the 3x3 chain "
                f"holds {ch['graph_lean']['activations_per_conv']} activations per convolution."
                if "activations_per_conv" in ch.get("graph_lean", {}) else ""), "",
             "| crop | batch | im2col, one image, all convs > 1x1 (GB) | MindSpore - PyTorch step GB | "
             "excess / im2col |", "|---|---|---|---|---|"]
    for row in sorted(r["pspnet"], key=lambda row: (row["crop"], row["batch"])):
        g, t, size = row.get("graph", {}), row.get("torch", {}), sizes.get(str(row["crop"]), {}).get("gb")
        if "step_gb" in g and "step_gb" in t and size:
            excess = g["step_gb"] - t["step_gb"]
            lines.append(f"| {row['crop']} | {row['batch']} | {size} | {excess:.2f} | {excess / size:.1f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crops", type=int, nargs="+", default=[233, 353])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    p.add_argument("--variants", nargs="+", default=["graph", "recompute", "pynative"],
                   choices=["graph", "lean", "recompute", "pynative"], help="MindSpore forms to measure (graph first)")
    p.add_argument("--append", action="store_true",
                   help="add these measurements to the existing memory.json (a form measured again replaces its old figure; "
                        "the row's other forms stay; no minimal reproduction), and rewrite the report")
    p.add_argument("--explain", action="store_true",
                   help="run only the minimal reproduction and the im2col sizes (for the crops already in memory.json) "
                        "and rewrite the report")
    probe_arguments(p)
    a = p.parse_args()
    if a.child:
        child_main(CHILDREN, a.child)
        return
    if a.explain:
        with open(os.path.join(a.out, "memory.json")) as f:
            r = json.load(f)
        python = a.torch_python if os.path.exists(a.torch_python) else ""
        r.update(explain(sorted({row["crop"] for row in r["pspnet"]}), python))
        r.setdefault("explained", []).append(time.strftime("%Y-%m-%d"))
    else:
        r = run(a.crops, a.batches, a.torch_python, a.variants, chain=not a.append)
    if a.append:
        with open(os.path.join(a.out, "memory.json")) as f:
            old = json.load(f)
        rows = {(row["crop"], row["batch"]): row for row in old["pspnet"]}
        for row in r["pspnet"]:  # the measured forms replace theirs; the row's other forms stay
            rows.setdefault((row["crop"], row["batch"]), {}).update(row)
        old["pspnet"] = list(rows.values())
        old.setdefault("appended", []).append(r["date"])
        r = old
    save_report(a.out, "memory", r, markdown(r))


if __name__ == "__main__":
    main()
