"""src.system.distributed: whether a launcher started this process data-parallel (launched_distributed, and its
refusal of leftover launcher variables), the collectives' time-out default, exact integer sums through float32
collectives (split_digits / join_digits / allreduce_sum), each rank's share of an evaluation set (shard) and
die_with_parent."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.system.distributed import (COLLECTIVE_ENV_DEFAULTS, DIGIT_BITS, DIGITS, LaunchEnvError, allreduce_sum,
                                    default_collective_env, join_digits, launched_distributed,
                                    shard, split_digits)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env,expected", [
    ({}, False), ({"MS_WORKER_NUM": "1"}, False), ({"MS_WORKER_NUM": ""}, False), ({"RANK_SIZE": "1"}, False),
    ({"MS_WORKER_NUM": "4"}, True), ({"RANK_SIZE": "2", "MINDSPORE_HCCL_CONFIG_PATH": "/rt.json"}, True),
])
def test_launched_distributed_reads_the_launchers_variables(env, expected):
    assert launched_distributed(env) is expected


@pytest.mark.parametrize("var,value", [("MS_WORKER_NUM", "two"), ("RANK_SIZE", "-2"), ("RANK_SIZE", "\u00b2"),
                                       ("MS_WORKER_NUM", "1.5")])
def test_a_launcher_count_that_is_not_a_whole_number_names_the_variable(var, value):
    with pytest.raises(LaunchEnvError) as info:
        launched_distributed({var: value})
    assert f"{var}={value!r}" in str(info.value) and f"export -n {var}" in str(info.value)


def test_a_stray_rank_size_is_refused_with_the_way_out():
    with pytest.raises(LaunchEnvError, match="RANK_SIZE=4 is set but no launcher started this process") as info:
        launched_distributed({"RANK_SIZE": "4", "RANK_TABLE_FILE": ""})
    assert "unset RANK_SIZE" in str(info.value)


def test_collective_defaults_fill_only_what_is_unset():
    env = {"MS_CPU_COMM_OP_TIMEOUT": "", "OTHER": "x"}  # an empty value counts as unset
    assert default_collective_env(env) == COLLECTIVE_ENV_DEFAULTS
    assert env == {**COLLECTIVE_ENV_DEFAULTS, "OTHER": "x"}
    assert default_collective_env(env) == {}


def test_digits_round_trip_every_non_negative_int64():
    values = np.array([0, 1, 4095, 4096, 2**24 + 1, 2**53 + 7, 2**63 - 1], dtype=np.int64)
    digits = split_digits(values)
    assert digits.shape == (DIGITS, values.size) and digits.max() < 2**DIGIT_BITS
    assert np.array_equal(join_digits(digits), values)
    matrix = np.arange(12, dtype=np.int64).reshape(3, 4) * 1_000_003
    assert np.array_equal(join_digits(split_digits(matrix)), matrix)


def test_summed_digits_carry_into_the_exact_sum():
    """What AllReduce does to the digits of each rank: add them (each sum stays exact in float32)."""
    ranks = [np.array([2**40 + 4095, 3, 2**30], dtype=np.int64) * k for k in range(1, 9)]
    summed = sum(split_digits(r).astype(np.float32) for r in ranks)
    assert summed.max() < 2**24  # exact in float32
    assert np.array_equal(join_digits(summed.astype(np.int64)), sum(ranks))


def test_allreduce_sum_outside_a_group_is_the_array_itself():
    counts = np.array([[1, 2], [3, 4]], dtype=np.int64)
    assert allreduce_sum(counts, 1) is counts
    assert allreduce_sum(np.array([-1.5]), 0)[0] == -1.5


def test_allreduce_sum_refuses_negative_integers_before_any_collective():
    with pytest.raises(ValueError, match="must be non-negative"):
        allreduce_sum(np.array([3, -1], dtype=np.int32), 2)


@pytest.mark.parametrize("n,size", [(10, 3), (7, 7), (2, 4), (0, 2), (1000, 8)])
def test_shard_gives_every_item_to_exactly_one_rank(n, size):
    items = [f"img{i}" for i in range(n)]
    parts = [list(shard(items, rank, size)) for rank in range(size)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts[0] == items[::size]


def test_die_with_parent_asks_linux_for_sigterm_when_the_parent_exits():
    """In a child process (the test process keeps its own setting): PR_GET_PDEATHSIG reads back SIGTERM."""
    code = ("import ctypes, signal\n"
            "from src.system.distributed import die_with_parent\n"
            "ok = die_with_parent()\n"
            "sig = ctypes.c_int(0)\n"
            "ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG\n"
            "print(ok, sig.value == signal.SIGTERM, 'mindspore' in __import__('sys').modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "False"]


def test_collective_timeout_default_keeps_what_the_user_set():
    from src.system.distributed import default_collective_env

    env = {}
    assert default_collective_env(env) == {"MS_CPU_COMM_OP_TIMEOUT": "1800"} and env["MS_CPU_COMM_OP_TIMEOUT"] == "1800"
    env = {"MS_CPU_COMM_OP_TIMEOUT": "60"}
    assert default_collective_env(env) == {} and env == {"MS_CPU_COMM_OP_TIMEOUT": "60"}


def test_integer_sums_survive_float32_collectives():
    from src.system.distributed import join_digits, split_digits

    counts = np.array([[0, 1, 2 ** 24 + 1], [2 ** 40 + 12345, 4095, 4096]], np.int64)
    digits = [split_digits(counts), split_digits(counts * 3)]
    assert max(d.max() for d in digits) < 4096
    summed = (digits[0].astype(np.float32) + digits[1].astype(np.float32)).astype(np.int64)  # what AllReduce does
    np.testing.assert_array_equal(join_digits(summed), counts * 4)
