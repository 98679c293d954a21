"""Fixtures shared by the tests of src/checkpoint/: the weights of a tiny PSPNet, built once per session."""
import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_pspnet_weights():
    from src.model.pspnet import PSPNet

    net = PSPNet(classes=6, layers=14, width_divisor=16)
    return {p.name: np.random.default_rng(len(p.name)).standard_normal(p.shape).astype(np.float32)
            for p in net.get_parameters()}
