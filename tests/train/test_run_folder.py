"""A training run's folder (src/train/run_folder.py): a fresh run refuses to replace another run's files (an
earlier run's unless --overwrite, checkpoints this program did not record always), starts clean with --overwrite
while keeping the user's own files, and writes config.yaml unless that file is the user's own --config."""
import json
from pathlib import Path

import pytest
import yaml

from helpers import save_config, tiny_config
from src.config import load_config
from src.outputs.errors import OutputExistsError
from src.outputs.folder import OutputFolder
from src.train.run_folder import CONFIG_NAME, METRICS_NAME, RunFolder, refuse_fresh_over_earlier
from src.train.run_state import ResumePoint


def _earlier_run(root: Path) -> None:
    """``root`` as an earlier `train` left it: its metrics.jsonl, written through the folder's owner."""
    with OutputFolder(root, "train.save_dir", "train") as out:
        out.append(METRICS_NAME, json.dumps({"kind": "step", "step": 1}))


def test_a_fresh_run_is_refused_over_an_earlier_run_unless_overwrite_and_over_unrecorded_checkpoints_always(
        tmp_path):
    run = tmp_path / "run"
    with OutputFolder(run, "train.save_dir", "train") as out:
        refuse_fresh_over_earlier(out)  # an empty folder
    _earlier_run(run)
    with OutputFolder(run, "train.save_dir", "train") as out:
        with pytest.raises(OutputExistsError, match=r"holds an earlier result \(metrics.jsonl\); a fresh run would "
                                                    r"replace it: continue it with --resume auto"):
            refuse_fresh_over_earlier(out)
    with OutputFolder(run, "train.save_dir", "train", overwrite=True) as out:
        refuse_fresh_over_earlier(out)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "epoch_0003.ckpt").write_bytes(b"not written by this program")
    with OutputFolder(run, "train.save_dir", "train", overwrite=True) as out:
        with pytest.raises(OutputExistsError, match=r"did not record \(checkpoints/epoch_0003.ckpt\); continue that "
                                                    r"run with --resume auto"):
            refuse_fresh_over_earlier(out)


def test_a_fresh_start_with_overwrite_removes_the_earlier_runs_records_only(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(tmp_path, run, train={"class_weights": "auto"})  # train.eval_interval 0: no val list read
    _earlier_run(run)
    (run / "notes.txt").write_text("the user's")
    with OutputFolder(run, "train.save_dir", "train", overwrite=True) as out:
        folder = RunFolder(cfg, 0, True, out)
        folder.prepare(cfg, ResumePoint())
        assert not (run / METRICS_NAME).exists() and folder.records.read() == []
        assert (run / "notes.txt").read_text() == "the user's"
        assert (run / "data_error_rank0.txt").read_text() == ""
        assert Path(folder.bad_sample_log(ResumePoint())).read_text() == ""
        folder.write_config([0.5, 2.0])
    written = yaml.safe_load((run / CONFIG_NAME).read_text())
    assert written["train"]["class_weights"] == [0.5, 2.0]  # auto, as the numbers it gave
    assert written["train"]["save_dir"] == str(run)


def test_the_users_own_config_in_the_run_folder_is_left_as_it_is(tmp_path):
    run = tmp_path / "run"
    mine = save_config(tiny_config(tmp_path, run), run / CONFIG_NAME)
    text = mine.read_text()
    cfg = load_config(mine)
    with OutputFolder(run, "train.save_dir", "train") as out:
        RunFolder(cfg, 0, False, out).write_config([1.0, 2.0])
    assert mine.read_text() == text


def test_another_rank_never_replaces_or_empties_a_users_file_at_its_names(tmp_path):
    """Rank 1 has no manifest to go by: its error log and bad-sample log are its own (made and marked by it) or
    refused; a user's files at those names were once replaced by empty ones."""
    from src.outputs.errors import OutputPathError

    run = tmp_path / "run"
    cfg = tiny_config(tmp_path, run)
    run.mkdir()
    (run / "data_error_rank1.txt").write_text("the user's")
    with pytest.raises(OutputPathError, match="data_error_rank1.txt was not written by this program"):
        RunFolder(cfg, 1, False, None).prepare(cfg, ResumePoint())
    (run / "data_error_rank1.txt").rename(run / "mine.txt")
    folder = RunFolder(cfg, 1, False, None)
    folder.prepare(cfg, ResumePoint())
    assert (run / "data_error_rank1.txt").read_text() == "" and (run / "mine.txt").read_text() == "the user's"
    (run / "bad_samples_rank1.tsv").write_text("the user's too")
    with pytest.raises(OutputPathError, match="bad_samples_rank1.tsv was not written by this program"):
        folder.bad_sample_log(ResumePoint())
    assert (run / "bad_samples_rank1.tsv").read_text() == "the user's too"
