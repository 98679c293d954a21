"""Fixtures shared by the tests of src/train/: the synthetic 'shapes' sets the tiny training runs read, each
generated once per session (the runs themselves train in their own tmp_path)."""
import pytest

from helpers import make_shapes


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """Six 48x48 'shapes' images (seed 2): two steps per epoch at tiny_config's batch of 2."""
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=6, size=48, seed=2)


@pytest.fixture(scope="session")
def ten_shapes(tmp_path_factory):
    """Ten 40x40 'shapes' images (seed 5), the set of the step-loop and validation-record tests (files using it
    name it ``shapes`` through a one-line fixture of their own)."""
    return make_shapes(tmp_path_factory.mktemp("ten_shapes"), num=10, size=40, seed=5)
