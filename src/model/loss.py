"""Softmax cross-entropy with an ignore label, and PSPNet's main + aux loss."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mindspore import nn, ops
import mindspore as ms
from src.config import DataConfig


class IgnoreCrossEntropy(nn.Cell):
    """Mean softmax cross-entropy over pixels whose label is not ``ignore_label``.

    ``logits`` is (N, C, H, W), ``labels`` is (N, H, W) integer.  A batch in
    which every pixel is ignored gives 0 (not NaN) and zero gradients.
    With ``class_weights`` (one per class) each pixel counts with its class's weight, in the sum and in the
    count it is divided by (PyTorch's ``CrossEntropyLoss(weight=...)``).
    Labels outside [0, C) other than ``ignore_label`` are the data loader's
    job to reject; here they are treated as ignored so they cannot index out
    of range.
    """

    def __init__(self, ignore_label: int = DataConfig.ignore_label,
                 class_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        # with class weights: sum of w[label] x loss over sum of w[label] (PyTorch's weighted mean)
        self.weights = None if class_weights is None else ms.Tensor(np.asarray(class_weights, np.float32))

    def construct(self, logits, labels):
        num_classes = logits.shape[1]
        labels = labels.astype(ms.int32)
        valid = ops.logical_and(labels != self.ignore_label, ops.logical_and(labels >= 0, labels < num_classes))
        safe = ops.where(valid, labels, ops.zeros_like(labels))
        logp = ops.log_softmax(logits, axis=1)
        picked = ops.gather_elements(logp, 1, safe.expand_dims(1)).squeeze(1)
        validf = valid.astype(logits.dtype)
        if self.weights is not None:
            validf = validf * ops.gather(self.weights.astype(logits.dtype), safe, 0)
        total = ops.reduce_sum(-picked * validf)
        count = ops.reduce_sum(validf)
        return total / ops.maximum(count, ops.ones_like(count))


class PSPLoss(nn.Cell):
    """``(CE(main) + aux_weight * CE(aux), CE(main), CE(aux))``; with one output the aux loss is 0."""

    def __init__(self, ignore_label: int = DataConfig.ignore_label, aux_weight: float = 0.4,
                 class_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        self.ce = IgnoreCrossEntropy(ignore_label, class_weights)
        self.aux_weight = aux_weight

    def construct(self, outputs, labels):
        if isinstance(outputs, (tuple, list)):
            main = self.ce(outputs[0], labels)
            aux = self.ce(outputs[1], labels)
        else:
            main = self.ce(outputs, labels)
            aux = ops.zeros_like(main)
        return main + self.aux_weight * aux, main, aux
