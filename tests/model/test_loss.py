import numpy as np
import mindspore as ms
import pytest

from src.model.loss import IgnoreCrossEntropy, PSPLoss


def numpy_ce(logits, labels, ignore=255):
    n, c, h, w = logits.shape
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    total, count = 0.0, 0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                t = labels[i, y, x]
                if t == ignore:
                    continue
                total -= logp[i, t, y, x]
                count += 1
    return total / count if count else 0.0


def _data(seed, n=2, c=5, h=4, w=3, ignore_frac=0.3):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c, h, w)).astype(np.float32) * 3
    labels = rng.integers(0, c, (n, h, w)).astype(np.int32)
    labels[rng.random((n, h, w)) < ignore_frac] = 255
    return logits, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ce_matches_numpy(seed):
    logits, labels = _data(seed)
    got = IgnoreCrossEntropy()(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, numpy_ce(logits, labels), rtol=1e-5)


def test_all_ignored_gives_zero_and_zero_grad():
    logits, labels = _data(0)
    labels[:] = 255
    ce = IgnoreCrossEntropy()
    assert float(ce(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()) == 0.0
    grad = ms.grad(lambda x: ce(x, ms.Tensor(labels)))(ms.Tensor(logits)).asnumpy()
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


def test_main_plus_weighted_aux():
    logits, labels = _data(5)
    aux, _ = _data(6)
    loss = PSPLoss(aux_weight=0.4)((ms.Tensor(logits), ms.Tensor(aux)), ms.Tensor(labels))[0].asnumpy()
    np.testing.assert_allclose(loss, numpy_ce(logits, labels) + 0.4 * numpy_ce(aux, labels), rtol=1e-5)
    only_main, _, no_aux = (x.asnumpy() for x in PSPLoss()(ms.Tensor(logits), ms.Tensor(labels)))
    assert no_aux == 0
    np.testing.assert_allclose(only_main, numpy_ce(logits, labels), rtol=1e-5)


def numpy_weighted_ce(logits, labels, weights, ignore):
    """PyTorch's CrossEntropyLoss(weight=w, ignore_index=ignore) with mean reduction, pixel by pixel."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    total = norm = 0.0
    for (i, y, x), t in np.ndenumerate(labels):
        if t == ignore:
            continue
        total -= weights[t] * logp[i, t, y, x]
        norm += weights[t]
    return total / norm if norm else 0.0


@pytest.mark.parametrize("seed", [0, 3])
def test_class_weights_match_numpy_with_another_ignore_value(seed):
    logits, labels = _data(seed)
    labels[labels == 255] = 250  # data.ignore_label 250
    weights = np.random.default_rng(seed).uniform(0.1, 5.0, logits.shape[1])
    got = IgnoreCrossEntropy(250, weights)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, numpy_weighted_ce(logits, labels, weights, 250), rtol=1e-5)
    plain = IgnoreCrossEntropy(250)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()
    np.testing.assert_allclose(plain, numpy_ce(logits, labels, ignore=250), rtol=1e-5)
    assert abs(float(got) - float(plain)) > 1e-4  # the weights changed the loss


def test_class_weights_reach_main_and_aux():
    logits, labels = _data(7)
    aux, _ = _data(8)
    w = [0.0, 1.0, 2.0, 3.0, 4.0]
    total = PSPLoss(aux_weight=0.4, class_weights=w)((ms.Tensor(logits), ms.Tensor(aux)), ms.Tensor(labels))[0]
    want = numpy_weighted_ce(logits, labels, w, 255) + 0.4 * numpy_weighted_ce(aux, labels, w, 255)
    np.testing.assert_allclose(total.asnumpy(), want, rtol=1e-5)
