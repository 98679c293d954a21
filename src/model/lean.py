"""A leaner backward for MindSpore's CPU convolutions: the input gradient as a forward convolution.

MindSpore 2.10's CPU ``Conv2DBackpropInput`` kernel runs oneDNN's im2col + GEMM implementation, and in a
GRAPH-mode training step each such kernel holds about two of its convolution's im2col matrices (one image,
``C_in x k x k x H x W`` floats) for the whole step; the forward ``Conv2D`` kernel holds none
(benchmarks/memory_probe.py measures both).  For a stride-1, ungrouped convolution padded to keep its size,
the input gradient is itself such a convolution: of the output gradient, with the kernel flipped in space
and its in/out channels swapped, the same dilation and padding.  Giving the convolution that backward
changes no value of the forward and computes the same gradient (up to float summation order; tests compare
both with the default backward); the weight gradient stays MindSpore's own kernel.
"""
from __future__ import annotations

import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.ops.operations import _grad_ops


def eligible(conv: nn.Conv2d) -> bool:
    """True for a stride-1, ungrouped, square convolution larger than 1x1 padded by dilation * (k // 2)."""
    k = conv.kernel_size
    pad = conv.padding if isinstance(conv.padding, int) else None
    return (k[0] == k[1] > 1 and tuple(conv.stride) == (1, 1) and conv.group == 1 and conv.pad_mode == "pad"
            and conv.dilation[0] == conv.dilation[1] and pad == conv.dilation[0] * (k[0] // 2))


class LeanConv2D(nn.Cell):
    """``Conv2D(x, w)`` (the convolution's own primitive) whose input gradient is a forward ``Conv2D``.

    The kernel is flipped with a constant permutation matrix over its taps (exact; ``ReverseV2`` on CPU took
    0.35 s for the classifier's 512x4096x3x3 kernel, the product 0.02 s).  When the convolution narrows the
    channels (classifier: 4096 -> 512), the input gradient widens them, which oneDNN's GEMM convolution ran
    3.5x slower than the backward kernel; it is then computed in square slices (512 -> 512, 8 of them) and
    concatenated, as fast as the backward kernel.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        k, d, pad = conv.kernel_size[0], conv.dilation[0], conv.padding
        cin, cout = conv.in_channels, conv.out_channels
        self.parts = cin // cout if cin > cout and cin % cout == 0 else 1
        self.forward_op = conv.conv2d
        self.input_grad = ops.Conv2D(out_channel=cin // self.parts, kernel_size=k, pad_mode="pad", pad=pad,
                                     dilation=d)
        # MindSpore's own weight-gradient primitive (what its default backward of Conv2D runs).
        self.weight_grad = _grad_ops.Conv2DBackpropFilter(cout, k, pad_mode="pad", pad=(pad,) * 4,
                                                          pad_list=(pad,) * 4, dilation=(1, 1, d, d))
        self.weight_shape = (cout, cin, k, k)
        self.reverse_taps = Tensor(np.eye(k * k, dtype=np.float32)[::-1].copy())

    def construct(self, x, w):
        return self.forward_op(x, w)

    def bprop(self, x, w, out, dout):
        cout, cin, k, _ = self.weight_shape
        flipped = ops.matmul(w.reshape(cout * cin, k * k), self.reverse_taps.astype(w.dtype)).reshape(cout, cin, k, k)
        w_t = flipped.transpose(1, 0, 2, 3)
        if self.parts == 1:
            dx = self.input_grad(dout, w_t)
        else:
            step = cin // self.parts
            dx = ops.concat([self.input_grad(dout, w_t[i * step:(i + 1) * step]) for i in range(self.parts)], 1)
        return dx, self.weight_grad(dout, x, self.weight_shape)


def lean_backward(net: nn.Cell) -> int:
    """Give every eligible convolution of ``net`` the lean input gradient (in place); return how many.

    Parameters, their names and the forward graph are unchanged: only the convolution's primitive is wrapped.
    """
    convs = [cell for _, cell in net.cells_and_names() if isinstance(cell, nn.Conv2d) and eligible(cell)]
    for conv in convs:
        conv.conv2d = LeanConv2D(conv)
    return len(convs)
