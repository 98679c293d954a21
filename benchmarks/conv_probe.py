"""Where inference time goes: every convolution shape of PSPNet-50, MindSpore GRAPH vs PyTorch, one by one.

The shapes come from the project's network itself (forward hooks at the chosen size, one image); each distinct
shape is timed alone in a MindSpore GRAPH cell and in a PyTorch Conv2d (2 threads each, processes one at a
time), and oneDNN's own log (ONEDNN_VERBOSE=1, read from each process's output) names the implementation each
framework got.  The report weights each shape by how often the network uses it.

Usage (from the repository folder):
  python -m benchmarks.conv_probe [--size 473] [--repeats 3] [--torch-python .venv-torch/bin/python]
Writes benchmarks/conv.md and benchmarks/conv.json.
"""
import argparse
import json
import os
import re
import sys
import time

# run_all is stdlib-only at import: safe in the PyTorch interpreter too
from benchmarks.run_all import _median_s, child_main, cpu_info, probe_arguments, run_child, save_report

# oneDNN's verbose line for a convolution run: implementation, then the problem, e.g. mb1_ic256oc256_ih60oh60kh3...
VERBOSE = re.compile(r"^onednn_verbose,(?:v1,)?primitive,exec,cpu,convolution,([^,]+),forward\w*,.*?,"
                     r"mb\d+_ic(\d+)oc(\d+)_ih(\d+)oh\d+kh(\d+)sh(\d+)dh(\d+)")


def conv_calls(size: int, training: bool = False) -> list:
    """Every convolution call of PSPNet-50 on one size x size image (with the aux head when ``training``):
    in/out channels, kernel, stride, dilation, input and output H/W, read with forward hooks."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn
    from src.system.device import setup_device
    from src.model.pspnet import PSPNet

    setup_device("CPU", "PYNATIVE")
    net = PSPNet(classes=21, layers=50, use_aux=training)
    net.set_train(training)
    calls = []

    def hook(cell, inputs, output):
        calls.append({"in": cell.in_channels, "out": cell.out_channels, "kernel": cell.kernel_size[0],
                      "stride": cell.stride[0], "dilation": cell.dilation[0], "in_hw": tuple(inputs[0].shape[2:]),
                      "out_hw": tuple(output.shape[2:])})

    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            cell.register_forward_hook(hook)
    net(ms.Tensor(np.zeros((1, 3, size, size), np.float32)))
    return calls


def shapes(size: int) -> list:
    """Distinct convolutions of the eval network at size x size: in, out, kernel, stride, dilation, input H/W, count."""
    seen = {}
    for c in conv_calls(size):
        key = (c["in"], c["out"], c["kernel"], c["stride"], c["dilation"], *c["in_hw"])
        seen[key] = seen.get(key, 0) + 1
    return [list(k) + [n] for k, n in seen.items()]


def ms_times(shapes_json: str, repeats: int) -> dict:
    """Median seconds of each shape's convolution alone, MindSpore GRAPH."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn
    from src.system.device import setup_device

    setup_device("CPU", "GRAPH")
    out = []
    for cin, cout, k, s, d, h, w, _ in json.loads(shapes_json):
        pad = d * (k // 2)
        conv = nn.Conv2d(cin, cout, k, stride=s, pad_mode="pad" if pad else "valid", padding=pad, dilation=d,
                         has_bias=False)
        x = ms.Tensor(np.random.default_rng(0).standard_normal((1, cin, h, w)).astype(np.float32))
        out.append(round(_median_s(lambda: conv(x).asnumpy(), repeats), 4))
    return {"s": out, "threads": int(ms.get_context("runtime_num_threads"))}


def torch_times(shapes_json: str, repeats: int) -> dict:
    """The same convolutions in PyTorch (threads = cores)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    out = []
    with torch.no_grad():
        for cin, cout, k, s, d, h, w, _ in json.loads(shapes_json):
            conv = torch.nn.Conv2d(cin, cout, k, stride=s, padding=d * (k // 2), dilation=d, bias=False)
            x = torch.randn(1, cin, h, w)
            out.append(round(_median_s(lambda: conv(x), repeats), 4))
    return {"s": out, "threads": torch.get_num_threads(), "torch": torch.__version__}


CHILDREN = {"shapes": shapes, "ms": ms_times, "torch": torch_times}


def _child(python: str, name: str, *args) -> tuple:
    """A child's JSON result and the oneDNN implementation it used per (in, out, H, kernel, stride, dilation)."""
    out = run_child(python, "benchmarks.conv_probe", name, args, env=dict(os.environ, GLOG_v="3", ONEDNN_VERBOSE="1"))
    if out.returncode:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-2000:]}")
    impl = {}
    for line in out.stdout.splitlines():
        m = VERBOSE.match(line)
        if m:  # oneDNN writes dilation as (d - 1)
            cin, cout, h, k, s, d = map(int, m.groups()[1:])
            impl[f"{cin},{cout},{h},{k},{s},{d + 1}"] = m.group(1)
    return json.loads(out.stdout.strip().splitlines()[-1]), impl


def run(size: int, repeats: int, torch_python: str) -> dict:
    found, _ = _child(sys.executable, "shapes", size)
    found.sort(key=lambda r: (r[5], -r[0]), reverse=True)
    text = json.dumps(found)
    print(f"{len(found)} distinct convolutions; MindSpore ...", flush=True)
    ms_r, ms_impl = _child(sys.executable, "ms", text, repeats)
    t_r, t_impl = ({}, {})
    if torch_python and os.path.exists(torch_python):
        print("PyTorch ...", flush=True)
        t_r, t_impl = _child(torch_python, "torch", text, repeats)
    rows = []
    for i, (cin, cout, k, s, d, h, w, n) in enumerate(found):
        key = f"{cin},{cout},{h},{k},{s},{d}"
        rows.append({"in": cin, "out": cout, "kernel": k, "stride": s, "dilation": d, "hw": f"{h}x{w}", "count": n,
                     "ms_s": ms_r["s"][i], "ms_impl": ms_impl.get(key, "not oneDNN"),
                     "torch_s": t_r["s"][i] if t_r else None, "torch_impl": t_impl.get(key, "not oneDNN") if t_r else None})
    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_info(), "size": size, "ms_threads": ms_r["threads"],
            "torch_threads": t_r.get("threads"), "torch": t_r.get("torch"), "rows": rows}


def markdown(r: dict) -> str:
    cpu, rows = r["cpu"], r["rows"]
    have_torch = rows and rows[0]["torch_s"] is not None
    lines = [f"# Convolutions of PSPNet-50 at {r['size']}x{r['size']}: MindSpore GRAPH vs PyTorch ({r['date']})", "",
             f"CPU: {cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['flags'])}; threads MindSpore "
             f"{r['ms_threads']}, PyTorch {r['torch_threads']}. Each convolution alone, median of repeats after a "
             f"warm-up; `x n` = how often the network uses the shape; the implementation is oneDNN's own name for "
             f"what it ran.", "",
             "| in -> out, kernel / stride / dilation, input | x n | MindSpore s (oneDNN impl.) | "
             "PyTorch s (oneDNN impl.) | ratio | n x (MindSpore - PyTorch) s |", "|---|---|---|---|---|---|"]
    total_ms = total_t = 0.0
    for x in rows:
        total_ms += x["count"] * x["ms_s"]
        shape = f"{x['in']} -> {x['out']}, {x['kernel']}/{x['stride']}/{x['dilation']}, {x['hw']}"
        if have_torch:
            total_t += x["count"] * x["torch_s"]
            lines.append(f"| {shape} | {x['count']} | {x['ms_s']} ({x['ms_impl']}) | {x['torch_s']} ({x['torch_impl']}) "
                         f"| {x['ms_s'] / x['torch_s']:.2f} | {x['count'] * (x['ms_s'] - x['torch_s']):.3f} |")
        else:
            lines.append(f"| {shape} | {x['count']} | {x['ms_s']} ({x['ms_impl']}) | - | - | - |")
    lines += ["", f"All convolutions of one forward: MindSpore {total_ms:.3f} s"
              + (f", PyTorch {total_t:.3f} s ({total_ms / total_t:.2f}x)." if have_torch else ".")]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=473)
    p.add_argument("--repeats", type=int, default=3)
    probe_arguments(p)
    a = p.parse_args()
    if a.child:
        child_main(CHILDREN, a.child)
        return
    r = run(a.size, a.repeats, a.torch_python)
    save_report(a.out, "conv", r, markdown(r))


if __name__ == "__main__":
    main()
