"""Fixtures shared by the tests of src/data/."""
import pytest

from src.data.synthetic import generate


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate(root, "shapes", num=10, size=64, seed=3)
    return root
