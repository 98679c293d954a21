"""The PyTorch peer of the benchmarks: the same PSPNet-50 (deep stem, dilated, PPM, aux) and the same GEMM sweep.

Run by ``python -m benchmarks.run_all`` with an interpreter that has torch (``--torch-python``, default
``.venv-torch/bin/python`` when it exists); torch is never a dependency of the project.  Prints one JSON line.
One part per process, so that each process's peak memory is its own:
  PYTHON_WITH_TORCH -m benchmarks.torch_peer gemm REPEATS SIZES...
  PYTHON_WITH_TORCH -m benchmarks.torch_peer inference SIZE REPEATS
  PYTHON_WITH_TORCH -m benchmarks.torch_peer train CROP STEPS
"""
import json
import os
import sys

from benchmarks.run_all import _median_s as _median_time, peak_rss_gb  # stdlib-only module: no MindSpore needed


def build_pspnet50(classes: int = 21, aux: bool = True):
    """PSPNet-50 as hszhao/semseg lays it out (so the work equals the MindSpore network's)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    def cbr(i, o, k, s=1, d=1):
        return [nn.Conv2d(i, o, k, s, padding=d * (k // 2), dilation=d, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    class Bottleneck(nn.Module):
        def __init__(self, inp, planes, stride, dilation):
            super().__init__()
            self.body = nn.Sequential(*cbr(inp, planes, 1), *cbr(planes, planes, 3, stride, dilation),
                                      nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4))
            self.down = None
            if stride != 1 or inp != planes * 4:
                self.down = nn.Sequential(nn.Conv2d(inp, planes * 4, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes * 4))

        def forward(self, x):
            return F.relu(self.body(x) + (x if self.down is None else self.down(x)))

    def stage(inp, planes, blocks, stride, dilation):
        cells = [Bottleneck(inp, planes, stride, dilation)] + [Bottleneck(planes * 4, planes, 1, dilation)
                                                                for _ in range(blocks - 1)]
        return nn.Sequential(*cells)

    class PSPNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer0 = nn.Sequential(*cbr(3, 64, 3, 2), *cbr(64, 64, 3), *cbr(64, 128, 3), nn.MaxPool2d(3, 2, 1))
            self.layer1, self.layer2 = stage(128, 64, 3, 1, 1), stage(256, 128, 4, 2, 1)
            self.layer3, self.layer4 = stage(512, 256, 6, 1, 2), stage(1024, 512, 3, 1, 4)
            self.ppm = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), *cbr(2048, 512, 1)) for b in (1, 2, 3, 6)])
            self.cls = nn.Sequential(*cbr(4096, 512, 3), nn.Dropout2d(0.1), nn.Conv2d(512, classes, 1))
            self.aux = nn.Sequential(*cbr(1024, 256, 3), nn.Dropout2d(0.1), nn.Conv2d(256, classes, 1)) if aux else None

        def forward(self, x):
            size = x.shape[2:]
            x3 = self.layer3(self.layer2(self.layer1(self.layer0(x))))
            x4 = self.layer4(x3)
            feats = [x4] + [F.interpolate(p(x4), x4.shape[2:], mode="bilinear", align_corners=True) for p in self.ppm]
            main = F.interpolate(self.cls(torch.cat(feats, 1)), size, mode="bilinear", align_corners=True)
            if self.training and self.aux is not None:
                return main, F.interpolate(self.aux(x3), size, mode="bilinear", align_corners=True)
            return main

    return PSPNet()


def _setup():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)  # as MindSpore's CPU kernels: one thread per core (printed)
    return torch, {"torch": torch.__version__, "threads": torch.get_num_threads()}


def gemm(repeats: int, *sweep: int) -> dict:
    """float32 torch.mm GFLOP/s per square size (several calls per timing for small sizes, as run_all's sweep)."""
    torch, out = _setup()
    out["gemm_gflops"] = {}
    for n in sweep:
        a = torch.randn(n, n)
        calls = max(1, 2 ** 28 // n ** 3)
        out["gemm_gflops"][str(n)] = round(2 * n ** 3 / _median_time(lambda: torch.mm(a, a), max(repeats, 3), calls)
                                           / 1e9, 1)
    return out


def inference(size: int, repeats: int) -> dict:
    """Median seconds of the eval network's forward on 1x3xSIZExSIZE, and this process's peak RSS."""
    torch, out = _setup()
    net = build_pspnet50(aux=False).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        out["inference_s"] = round(_median_time(lambda: net(x), repeats), 3)
    return dict(out, size=size, peak_rss_gb=peak_rss_gb(2))


def train(crop: int, steps: int) -> dict:
    """Median seconds of one SGD step (batch 2, with aux, ignore label 255) at CROP, and the peak RSS."""
    torch, out = _setup()
    net = build_pspnet50(aux=True).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    xb = torch.randn(2, 3, crop, crop)
    yb = torch.randint(0, 21, (2, crop, crop))
    ce = torch.nn.CrossEntropyLoss(ignore_index=255)

    def step():
        opt.zero_grad()
        main_out, aux_out = net(xb)
        loss = ce(main_out, yb) + 0.4 * ce(aux_out, yb)
        loss.backward()
        opt.step()

    out["s_per_step"] = round(_median_time(step, steps), 3)
    return dict(out, crop=crop, batch=2, peak_rss_gb=peak_rss_gb(2))


PARTS = {"gemm": gemm, "inference": inference, "train": train}

if __name__ == "__main__":
    part, *args = sys.argv[1:]
    print(json.dumps(PARTS[part](*map(int, args))))
