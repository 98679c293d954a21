"""tools.target_check: the GPU fallback check's own logic without a device (scripts/check_gpu.sh runs it end to
end in tests/integration/test_gpu_check_script.py): the comparison's verdicts, a run's step losses, the one fixed
input every target's logits are computed on, and the comparison of two runs' files."""
import json

import numpy as np
import pytest

from src.tools.target_check import TargetCheckError, compare, compare_runs, fixed_input, read_losses


def test_compare_agrees_only_when_losses_and_logits_do():
    logits = np.random.default_rng(0).standard_normal((1, 6, 9, 9)).astype(np.float32)
    same = compare([2.0, 1.5, 1.2], [2.0, 1.5, 1.2], logits, logits.copy())
    assert same["agree"] and same["logits_max_abs_diff"] == 0
    drift = compare([2.0, 1.5, 1.2], [2.0, 1.5, 1.4], logits, logits)
    assert not drift["agree"] and not drift["checks"]["every step loss within 0.05 (relative)"]
    noisy = compare([2.0], [2.0], logits, logits + 0.1)
    assert not noisy["agree"] and noisy["logits_max_abs_diff"] > 0.09
    assert not compare([2.0], [2.0], logits, logits[:, :5])["agree"]  # a wrong class count never agrees
    assert not compare([2.0, 1.0], [2.0], logits, logits)["agree"]  # a run that stopped early


def _run(folder, losses):
    """A run folder whose metrics.jsonl holds one step row per loss, with an eval row and a blank line between."""
    folder.mkdir()
    rows = [json.dumps({"kind": "step", "step": i + 1, "loss": loss}) for i, loss in enumerate(losses)]
    rows.insert(1, json.dumps({"kind": "eval", "miou": 0.5, "loss": 9.0}))
    (folder / "metrics.jsonl").write_text("\n".join(rows) + "\n\n")
    return folder


def test_read_losses_keeps_the_step_rows_in_order_and_names_a_run_that_did_not_finish(tmp_path):
    assert read_losses(_run(tmp_path / "run", [2.5, 1.25, 1])) == [2.5, 1.25, 1.0]
    with pytest.raises(TargetCheckError, match="metrics.jsonl not found: did the training run finish"):
        read_losses(tmp_path / "nothing")


def test_fixed_input_is_one_seeded_image_batch_of_the_crop_size():
    x = fixed_input((9, 11))
    assert x.shape == (1, 3, 9, 11) and x.dtype == np.float32
    np.testing.assert_array_equal(x, fixed_input([9, 11]))  # every target gets the same numbers
    assert not np.array_equal(x, fixed_input((9, 11), seed=1))


def test_compare_runs_reads_both_runs_and_logits_and_names_an_unreadable_file(tmp_path):
    logits = np.random.default_rng(0).standard_normal((1, 2, 3, 3)).astype(np.float32)
    np.save(tmp_path / "cpu.npy", logits)
    np.save(tmp_path / "gpu.npy", logits + 1.0)
    ref, run = _run(tmp_path / "ref", [2.0, 1.5]), _run(tmp_path / "target", [2.0, 1.5])
    same = compare_runs(str(ref), str(run), str(tmp_path / "cpu.npy"), str(tmp_path / "cpu.npy"), "GPU")
    assert same["target"] == "GPU" and same["agree"] and same["steps"] == 2
    apart = compare_runs(str(ref), str(run), str(tmp_path / "cpu.npy"), str(tmp_path / "gpu.npy"), "GPU")
    assert not apart["agree"] and apart["logits_max_abs_diff"] == pytest.approx(1.0)
    with pytest.raises(TargetCheckError, match="cannot read .*missing.npy"):
        compare_runs(str(ref), str(run), str(tmp_path / "cpu.npy"), str(tmp_path / "missing.npy"), "GPU")
