"""Nothing lost, by design: each case of the "Nothing lost" issue built as a user would (real files, real
symlinks, a real second process), asserting the user's bytes unchanged (sha256) or one refusal line."""
import errno
import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import full_disk_at, make_shapes, save_config, tiny_config
from src.outputs import folder as owner_folder
from src.outputs.manifest import MANIFEST
from src.config import load_config
from src.data.dataset import read_list
from src.data.labels import dataset_spec, voc_palette
from src.evaluation.evaluate import evaluate_samples, open_results_dir
from src.evaluation.pictures import save_prediction
from src.evaluation.protocol import protocol_from_config
from src.deploy.export import export_files
from src.outputs.atomic import write_text
from src.outputs.errors import OutputExistsError, OutputPathError, RunLockedError
from src.outputs.folder import OutputFolder
from src.train.loop import Trainer
from src.train.records import MetricsLog

ROOT = Path(__file__).resolve().parents[2]


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree(folder: Path):
    """Every file under ``folder`` with its sha256 (links by their target)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = sha(p)
    return out


def hold_lock(folder: Path, command: str):
    """A second, real process that holds ``folder``'s lock until killed."""
    code = ("import sys, time; from src.outputs.folder import OutputFolder; held = OutputFolder(sys.argv[1], 'x', sys.argv[2])"
            ".__enter__(); print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder), command], cwd=str(ROOT), stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


# --- the owner's primitives ---------------------------------------------------------------------------------------

def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    write_text(target, "the earlier result")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OutputPathError, match=r"results.json: No space left on device .*earlier file .* intact"):
        write_text(target, "a new result")
    assert target.read_text() == "the earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_an_exporter_that_fails_midway_leaves_nothing_under_the_final_name(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"earlier export")

    def half_then_full(base):
        Path(base + ".onnx").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputPathError, match="m.onnx: No space left"):
        export_files(half_then_full, target)
    assert target.read_bytes() == b"earlier export" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_an_exporter_that_locks_its_folder_cannot_touch_the_callers(tmp_path):
    """MindSpore's ONNX exporter chmods the folder it writes into to 0700 and leaves the file 0400."""
    tmp_path.chmod(0o755)

    def like_mindspore(base):
        os.chmod(os.path.dirname(base), 0o700)
        Path(base + ".onnx").write_bytes(b"model")
        os.chmod(base + ".onnx", 0o400)

    export_files(like_mindspore, tmp_path / "pspnet.onnx")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    mode = stat.S_IMODE((tmp_path / "pspnet.onnx").stat().st_mode)
    assert mode & 0o600 == 0o600 and (tmp_path / "pspnet.onnx").read_bytes() == b"model"
    assert [p.name for p in tmp_path.iterdir()] == ["pspnet.onnx"]


def test_a_failed_check_places_no_file(tmp_path):
    def refuse(made):
        raise OutputPathError("the exported model gives NaN")

    with pytest.raises(OutputPathError, match="NaN"):
        export_files(lambda base: Path(base + ".mindir").write_bytes(b"m"), tmp_path / "m.mindir", refuse)
    assert list(tmp_path.iterdir()) == []


# --- symbolic links ----------------------------------------------------------------------------------------------

def test_a_picture_name_that_is_a_symlink_is_refused_and_the_users_file_kept(tmp_path):
    user = tmp_path / "thesis.png"
    user.write_bytes(b"my figure")
    out = tmp_path / "out"
    (out / "gray").mkdir(parents=True)
    (out / "gray" / "a.png").symlink_to(user)
    pred, image = np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.uint8)
    with OutputFolder(out, "--out", "predict") as folder:
        with pytest.raises(OutputPathError, match="symbolic link"):
            save_prediction(pred, image, "a", folder, voc_palette())
    assert user.read_bytes() == b"my figure"
    (tmp_path / "mine").mkdir()
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "color").symlink_to(tmp_path / "mine")  # a linked sub-folder
    with OutputFolder(tmp_path / "out2", "--out", "predict") as folder, pytest.raises(OutputPathError, match="link"):
        save_prediction(pred, image, "a", folder, voc_palette())
    assert list((tmp_path / "mine").iterdir()) == []


def test_export_file_name_on_a_symlink_is_refused_before_any_work(tmp_path):
    from src.deploy.export import export_model
    from src.config import ModelConfig

    user = tmp_path / "mine.mindir"
    user.write_bytes(b"user's model")
    (tmp_path / "m.mindir").symlink_to(user)
    with pytest.raises(OutputPathError, match="symbolic link"):
        export_model(ModelConfig(), 6, str(tmp_path / "missing.ckpt"), "MINDIR", 1, 33, 33, str(tmp_path / "m"))
    assert user.read_bytes() == b"user's model"


# --- ownership by manifest --------------------------------------------------------------------------------------

def test_only_files_this_program_wrote_are_replaced_or_removed(tmp_path):
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        folder.put_text("gray/a.png", "ours")
    (tmp_path / "gray" / "mine.png").write_text("a user's file in our sub-folder")
    (tmp_path / "gray" / "b.png").write_text("a user's file with an output's name")
    (tmp_path / ".pspnet_310_work").write_text("a marker grants nothing")
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        with pytest.raises(OutputExistsError, match="earlier result"):
            folder.refuse_earlier(["gray/"], "pass --overwrite")
        with pytest.raises(OutputExistsError, match="b.png exists and was not written by this program"):
            folder.put_text("gray/b.png", "ours")
        assert folder.remove_owned(["gray/"]) == ["gray/a.png"]
    assert (tmp_path / "gray" / "mine.png").exists() and (tmp_path / "gray" / "b.png").read_text().startswith("a user")
    # a file we wrote that the user changed since is theirs now
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        folder.put_text("c.txt", "ours")
    (tmp_path / "c.txt").write_text("edited by hand")
    with OutputFolder(tmp_path, "--out", "predict", overwrite=True) as folder:
        with pytest.raises(OutputExistsError, match="was changed after this program wrote it"):
            folder.put_text("c.txt", "new")
        assert folder.remove("c.txt") is False
    assert (tmp_path / "c.txt").read_text() == "edited by hand"


def test_a_cut_short_manifest_line_is_skipped(tmp_path, caplog):
    with OutputFolder(tmp_path, "--out", "x") as folder:
        folder.put_text("a.txt", "a")
    with open(tmp_path / MANIFEST, "a") as f:
        f.write('{"name": "b.txt", "kind": "fi')  # killed mid-line
    with caplog.at_level(logging.WARNING), OutputFolder(tmp_path, "--out", "x") as folder:
        assert folder.owned() == ["a.txt"]
        folder.put_text("c.txt", "c")  # the next record starts on a line of its own
    assert "unreadable record" in caplog.text
    with OutputFolder(tmp_path, "--out", "x", overwrite=True) as folder:
        assert folder.owned() == ["a.txt", "c.txt"] and folder.unchanged("c.txt")
        folder.put_text("c.txt", "c2")  # its own file, replaced: not refused as "not written by this program"


def test_records_glued_to_a_cut_line_are_recovered(tmp_path):
    with OutputFolder(tmp_path, "--out", "x") as folder:
        folder.put_text("a.txt", "a")
        folder.put_text("b.txt", "b")
    lines = (tmp_path / MANIFEST).read_text().splitlines()
    (tmp_path / MANIFEST).write_text(lines[0][:20] + lines[0] + lines[1] + "\n")  # an older append, cut
    with OutputFolder(tmp_path, "--out", "x", overwrite=True) as folder:
        assert folder.owned() == ["a.txt", "b.txt"] and folder.unchanged("b.txt")


# --- two commands on one folder ------------------------------------------------------------------------------------

def test_a_second_eval_on_one_results_folder_is_refused_while_the_first_runs(tmp_path):
    holder = hold_lock(tmp_path / "ev", "eval")
    try:
        with pytest.raises(RunLockedError, match=r"in use by another run \(eval, pid \d+"):
            open_results_dir(tmp_path / "ev", overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    open_results_dir(tmp_path / "ev", overwrite=False).close()  # a killed holder's lock is taken over


def test_an_earlier_evaluation_is_replaced_only_with_overwrite(tmp_path):
    folder = open_results_dir(tmp_path, overwrite=False)
    folder.put_json("results.json", {"mIoU": 0.5})
    folder.close()
    (tmp_path / "notes.md").write_text("mine")
    before = sha(tmp_path / "results.json")
    with pytest.raises(OutputExistsError, match="results.json.*--overwrite"):
        open_results_dir(tmp_path, overwrite=False)
    assert sha(tmp_path / "results.json") == before
    open_results_dir(tmp_path, overwrite=True).close()
    assert not (tmp_path / "results.json").exists() and (tmp_path / "notes.md").read_text() == "mine"


def test_a_second_flow_on_one_work_folder_is_refused(tmp_path):
    from src.deploy.offline import prepare_work_dir

    holder = hold_lock(tmp_path / "w", "flow310")
    try:
        with pytest.raises(RunLockedError, match="flow310"):
            prepare_work_dir(tmp_path / "w")
    finally:
        holder.kill()
        holder.wait()


# --- pictures of images with one name -----------------------------------------------------------------------------

def test_pictures_of_images_with_the_same_name_in_two_folders_are_all_kept(tmp_path):
    root = make_shapes(tmp_path / "d", num=3)
    for sub in ("a", "b"):
        (root / sub).mkdir()
        (root / sub / "x.jpg").write_bytes((root / "JPEGImages" / "shapes_00000.jpg").read_bytes())
    lines = "a/x.jpg SegmentationClassAug/shapes_00000.png\nb/x.jpg SegmentationClassAug/shapes_00000.png\n" \
            "JPEGImages/shapes_00001.jpg SegmentationClassAug/shapes_00001.png\n"
    (root / "two.txt").write_text(lines)
    cfg = tiny_config(root, tmp_path / "run")
    samples = read_list(str(root / "two.txt"), str(root))
    protocol = protocol_from_config(cfg.data, cfg.eval)

    def predict(x):
        return np.zeros((x.shape[0], 6, x.shape[2], x.shape[3]), np.float32)

    with OutputFolder(tmp_path / "ev", "results", "eval") as folder:
        evaluate_samples(samples, dataset_spec("synthetic", 6), predict, protocol, 255, folder)
    assert sorted(p.name for p in (tmp_path / "ev" / "gray").iterdir()) == ["shapes_00001.png", "x_jpg_1.png", "x_jpg_2.png"]


# --- training: a fresh run over a finished one, the user's config, records --------------------------------------

@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=6)


def _earlier_run(save_dir: Path) -> dict:
    """A finished run's files as this program records them, and a user's note among them."""
    with OutputFolder(save_dir, "train.save_dir", "train") as folder:
        for e in (1, 2, 3, 4):
            folder.put_bytes(f"checkpoints/epoch_{e:04d}.ckpt", b"weights %d" % e)
        folder.put_bytes("checkpoints/best.ckpt", b"best weights")
        folder.put_text("metrics.jsonl", '{"kind": "eval", "epoch": 4, "miou": 0.107}\n')
    (save_dir / "checkpoints" / "notes.txt").write_text("the user's notes")
    return tree(save_dir)


def test_a_fresh_run_over_a_finished_one_is_refused_and_loses_nothing(shapes, tmp_path):
    before = _earlier_run(tmp_path / "run")
    cfg = tiny_config(shapes, tmp_path / "run")
    with pytest.raises(OutputExistsError) as err:
        Trainer(cfg)
    message = str(err.value)
    assert "--resume auto" in message and "--overwrite" in message and "another train.save_dir" in message
    assert "\n" not in message
    assert tree(tmp_path / "run") == before


def test_overwrite_replaces_only_the_earlier_runs_files(shapes, tmp_path):
    _earlier_run(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "epoch_0009.ckpt").write_bytes(b"a checkpoint this program did not record")
    cfg = tiny_config(shapes, tmp_path / "run")
    with pytest.raises(OutputExistsError, match="did not record .*epoch_0009"):
        Trainer(cfg, overwrite=True)  # --overwrite never removes what the program did not write
    (tmp_path / "run" / "checkpoints" / "epoch_0009.ckpt").unlink()
    Trainer(cfg, overwrite=True)
    left = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert left == ["notes.txt"]  # the earlier run's checkpoints are gone, the user's notes stay


def test_the_users_config_in_save_dir_is_never_rewritten(shapes, tmp_path):
    save_dir = tmp_path / "run"
    cfg_file = save_config(tiny_config(shapes, save_dir), save_dir / "config.yaml")
    with open(cfg_file, "a") as f:
        f.write("# my comment, which a rewrite would lose\n")
    before = sha(cfg_file)
    Trainer(load_config(str(cfg_file), ["train.epochs", "3"]))
    assert sha(cfg_file) == before


def test_a_users_file_named_like_a_run_file_is_refused_before_any_work(shapes, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("my own metrics")
    with pytest.raises(OutputExistsError, match="metrics.jsonl exists and was not written by this program"):
        Trainer(tiny_config(shapes, tmp_path / "run"))
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == "my own metrics"


def test_a_cut_short_metrics_line_is_dropped_with_a_warning(tmp_path, caplog):
    with OutputFolder(tmp_path, "train.save_dir", "train") as folder:
        log = MetricsLog(tmp_path / "metrics.jsonl", folder)
        log.write({"kind": "step", "step": 1, "loss": 1.0})
        log.write({"kind": "step", "step": 2, "loss": 0.9})
        with open(tmp_path / "metrics.jsonl", "a") as f:
            f.write('{"kind": "step", "st')  # killed mid-write
        with caplog.at_level(logging.WARNING):
            assert [r["step"] for r in log.read()] == [1, 2]
            assert log.truncate_after(5) == 0
        assert "cut short" in caplog.text
        assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2  # the rewrite drops the cut line


@pytest.mark.slow
def test_an_evaluation_killed_after_the_last_epoch_is_redone_by_resume_auto(shapes, tmp_path):
    cfg = tiny_config(shapes, tmp_path / "run", train={"epochs": 1, "eval_interval": 1})
    Trainer(cfg).run()
    with OutputFolder(tmp_path / "run", "train.save_dir", "train") as folder:  # as if killed during the evaluation
        kept = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r["kind"] != "eval"]
        folder.put_text("metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        folder.remove("checkpoints/best.ckpt")
        folder.remove("checkpoints/best.json")
    summary = Trainer(cfg, resume="auto").run()
    assert summary.get("nothing_left") and summary["last_miou"] is not None
    evals = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1]
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


def test_a_full_disk_at_the_curves_is_a_warning_not_a_lost_epoch(shapes, tmp_path, monkeypatch, caplog):
    trainer = Trainer(tiny_config(shapes, tmp_path / "run"))
    trainer.records.write({"kind": "step", "step": 1, "loss": 1.0, "lr": 0.01})

    full_disk_at(monkeypatch, "curves.png")
    with caplog.at_level(logging.WARNING):
        trainer._plot()
    assert "cannot write" in caplog.text and "curves.png" in caplog.text
    assert not (tmp_path / "run" / "curves.png").exists()


# --- the command line: one line, exit 2 ----------------------------------------------------------------------------

def _cli(args, cwd, **env):
    full = {**os.environ, "GLOG_v": "3", **env}
    for var in ("RANK_SIZE", "RANK_ID", "DEVICE_ID", "RANK_TABLE_FILE", "MS_WORKER_NUM", "PSPNET_PID_DIR"):
        if var not in env:
            full.pop(var, None)
    return subprocess.run([sys.executable, str(ROOT), *args], cwd=str(cwd), env=full, capture_output=True,
                          text=True, timeout=300)


def _error_lines(proc):
    return [line for line in proc.stderr.splitlines() if "error" in line.lower()]


@pytest.mark.slow
def test_train_cli_refuses_a_fresh_run_and_a_stray_rank_size_with_one_line(shapes, tmp_path):
    before = _earlier_run(tmp_path / "run")
    cfg_file = save_config(tiny_config(shapes, tmp_path / "run"), tmp_path / "c.yaml")
    proc = _cli(["train", "--config", str(cfg_file)], tmp_path)
    assert proc.returncode == 2 and len(_error_lines(proc)) == 1, proc.stderr
    assert "--resume auto" in proc.stderr and "Traceback" not in proc.stderr
    assert tree(tmp_path / "run") == before
    proc = _cli(["train", "--config", str(cfg_file), "--overwrite"], tmp_path, RANK_SIZE="8")
    assert proc.returncode == 2 and len(_error_lines(proc)) == 1, proc.stderr
    assert "RANK_SIZE=8 is set but no launcher started this process" in proc.stderr
    assert "Traceback" not in proc.stderr and tree(tmp_path / "run") == before


def test_explicit_flags_win_over_leftover_environment():
    from src.system.device import DeviceError, choose_device_id
    from src.system.distributed import LaunchEnvError, launched_distributed

    assert choose_device_id(3, True, {"DEVICE_ID": "5"}) == (3, "--device_id")
    assert choose_device_id(3, False, {"DEVICE_ID": "5"}) == (5, "the environment's DEVICE_ID")
    assert choose_device_id(None, False, {}) == (0, "the default")
    with pytest.raises(DeviceError, match="DEVICE_ID='²'"):
        choose_device_id(None, False, {"DEVICE_ID": "²"})
    with pytest.raises(LaunchEnvError, match="RANK_SIZE=8"):
        launched_distributed({"RANK_SIZE": "8"})
    assert launched_distributed({"RANK_SIZE": "8", "RANK_TABLE_FILE": "/t.json"})
    assert launched_distributed({"MS_WORKER_NUM": "2"}) and not launched_distributed({})


def test_picture_names_stay_distinct_when_a_made_name_equals_an_input(tmp_path):
    from src.evaluation.pictures import output_names

    names = output_names([Path("a/x.jpg"), Path("b/x.jpg"), Path("c/x_jpg_1.jpg")])
    assert len(set(names)) == 3 and names[:2] == ["x_jpg_1", "x_jpg_2"]


def test_a_symlinked_checkpoints_folder_is_refused_before_anything_is_removed(shapes, tmp_path):
    """The start-up clean-up of interrupted saves used to follow the link and delete by name pattern."""
    (tmp_path / "elsewhere").mkdir()
    mine = tmp_path / "elsewhere" / ".draft.part"
    mine.write_text("the user's")
    (tmp_path / "elsewhere" / "best.ckpt.before-lr-change.tmp.ckpt").write_text("also the user's")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputPathError, match="checkpoints is a symbolic link"):
        Trainer(tiny_config(shapes, tmp_path / "run"))
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == [".draft.part",
                                                                          "best.ckpt.before-lr-change.tmp.ckpt"]


def test_only_this_programs_own_temporary_files_are_cleaned_up(shapes, tmp_path):
    run = tmp_path / "run"
    with OutputFolder(run, "train.save_dir", "train") as folder:
        folder.put_bytes("checkpoints/epoch_0001.ckpt", b"ours")
    ours = run / "checkpoints" / ".epoch_0001.ckpt.ab12cd34.part"  # an interrupted save of a file we own
    ours.write_bytes(b"half")
    theirs = [run / "checkpoints" / n for n in (".draft.part", "best.ckpt.before-lr-change.tmp.ckpt",
                                                 ".notes.txt.ab12cd34.part", ".epoch_0001.ckpt.mynotes1.part")]
    for p in theirs:
        p.write_text("the user's")
    with OutputFolder(run, "train.save_dir", "train"):  # a locked open cleans every folder it wrote in
        pass
    assert not ours.exists() and all(p.read_text() == "the user's" for p in theirs)
    linked = run / "checkpoints" / ".epoch_0001.ckpt.cd34ab12.part"
    os.link(theirs[0], linked)  # a hard link to a user's file under a temporary's name: not ours to remove
    with OutputFolder(run, "train.save_dir", "train") as folder:
        assert folder.remove_partials("checkpoints") == [] and linked.exists()


def test_a_users_file_in_place_of_a_log_is_never_replaced(shapes, tmp_path):
    """metrics.jsonl is appended to by the run: recognised by its inode, so a file put in its place is the user's."""
    with OutputFolder(tmp_path / "run", "train.save_dir", "train") as folder:
        folder.put_bytes("checkpoints/epoch_0001.ckpt", b"ours")
        folder.append("metrics.jsonl", '{"kind": "step", "step": 1}')
    (tmp_path / "run" / "metrics.jsonl").unlink()
    (tmp_path / "run" / "metrics.jsonl").write_text("my own notes")
    with pytest.raises(OutputExistsError, match="metrics.jsonl was changed after this program wrote it"):
        Trainer(tiny_config(shapes, tmp_path / "run"), overwrite=True)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == "my own notes"


def test_a_run_rewrites_its_own_files_but_pictures_are_one_per_name(tmp_path):
    """best.ckpt after every better evaluation, curves.png after each: the same run's own rewrites are fine;
    a second picture of one name in one run is refused (it would replace the first image's)."""
    with OutputFolder(tmp_path, "train.save_dir", "train") as folder:
        for miou in (b"0.1", b"0.2"):
            folder.put_bytes("checkpoints/best.ckpt", miou)
            folder.put_bytes("curves.png", miou)
        assert (tmp_path / "checkpoints" / "best.ckpt").read_bytes() == b"0.2"
        folder.put_bytes("gray/x.png", b"first image", unique=True)
        with pytest.raises(OutputExistsError, match="two outputs named .*gray/x.png in one run"):
            folder.put_bytes("gray/x.png", b"second image", unique=True)
    assert (tmp_path / "gray" / "x.png").read_bytes() == b"first image"


def test_a_manifest_of_many_runs_is_compacted_under_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(owner_folder, "COMPACT_SLACK", 10)  # looked up there
    one = 0
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        for i in range(300):  # 300 rewrites of 3 names: history, not content, compacted as the run goes
            folder.put_bytes(f"gray/{i % 3}.png", b"x%d" % i)
            one = one or (tmp_path / MANIFEST).stat().st_size
            assert len((tmp_path / MANIFEST).read_text().splitlines()) <= 2 * 3 + 10 + 1
    assert (tmp_path / MANIFEST).stat().st_size < 30 * one  # never the 300 records' size
    with OutputFolder(tmp_path, "--out", "predict", lock=False) as folder:
        for i in range(30):  # without the lock (other ranks): never rewritten, only appended
            folder.put_bytes(f"gray/{i % 3}.png", b"y%d" % i)
    assert len((tmp_path / MANIFEST).read_text().splitlines()) > 30
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        assert folder.owned() == ["gray/0.png", "gray/1.png", "gray/2.png"]
    assert len((tmp_path / MANIFEST).read_text().splitlines()) == 3  # three live entries remain
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        assert folder.owned() == ["gray/0.png", "gray/1.png", "gray/2.png"] and folder.unchanged("gray/2.png")


def test_the_310_apps_output_folder_is_made_through_the_owner(tmp_path):
    """app_runner's ``output/`` is created by the owner (it was a bare Path.mkdir): an existing folder is kept,
    a link planted there is refused in one line and the folder it points to stays empty."""
    from src.deploy.offline import app_runner

    app = tmp_path / "app.sh"
    app.write_text('#!/bin/sh\nfor a in "$@"; do case $a in --output_dir=*) echo 1 > "${a#*=}/y.bin";; esac; done\n')
    app.chmod(0o755)
    work = tmp_path / "work"
    with OutputFolder(work, "--out", "flow310") as folder:
        app_runner(str(app), "m.mindir")(folder)
        assert (work / "output" / "y.bin").read_text() == "1\n"
        app_runner(str(app), "m.mindir")(folder)  # the folder is there already: kept
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "output").symlink_to(elsewhere)
    with OutputFolder(other, "--out", "flow310") as folder:
        with pytest.raises(OutputPathError, match="symbolic link"):
            app_runner(str(app), "m.mindir")(folder)
    assert list(elsewhere.iterdir()) == []
