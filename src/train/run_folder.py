"""A training run's folder (``train.save_dir``) before the first step: :class:`RunFolder` checks it, starts
fresh or continues in it, opens the run's logs and ``metrics.jsonl``, and writes ``config.yaml`` once the run
could start. Every file goes through the folder's owner, :class:`src.outputs.OutputFolder` (rank 0's)."""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

from src.config import Config, config_yaml
from src.data.dataset import read_list
from src.outputs.atomic import claim_rank_file, ensure_output_dir
from src.outputs.errors import OutputExistsError
from src.outputs.folder import OutputFolder
from src.train.records import MetricsLog
from src.train.run_state import ResumePoint, RunCheckpoints, epoch_checkpoints

__all__ = ["RunFolder", "refuse_fresh_over_earlier", "CONFIG_NAME", "METRICS_NAME", "CURVES_NAME", "RUN_FILES"]

logger = logging.getLogger(__name__)

CONFIG_NAME, METRICS_NAME, CURVES_NAME = "config.yaml", "metrics.jsonl", "curves.png"
RUN_FILES = (CONFIG_NAME, METRICS_NAME, CURVES_NAME, "train.log")  # a user's file of these names is never replaced


class RunFolder:
    """One rank's view of ``train.save_dir``: ``outputs`` (rank 0's owner, None on other ranks), ``records``
    (rank 0's ``metrics.jsonl``) and ``error_log`` (this rank's record of a sample that stops the run)."""

    def __init__(self, cfg: Config, rank: int, overwrite: bool, outputs: Optional[OutputFolder]) -> None:
        """``outputs``: rank 0's folder, already locked by the caller (opened here without a lock when not given);
        ``overwrite`` lets a fresh run replace an earlier run's files."""
        self.cfg, self.rank, self.is_main = cfg, rank, rank == 0
        self.save_dir = Path(cfg.train.save_dir)
        self.outputs = outputs
        if self.is_main and outputs is None:
            self.outputs = OutputFolder(self.save_dir, "train.save_dir", "train", overwrite, lock=False).__enter__()
        self.records: Optional[MetricsLog] = None
        self.error_log = str(self.save_dir / f"data_error_rank{rank}.txt")

    @property
    def owner(self) -> Optional[OutputFolder]:
        """Rank 0's output folder; None on the other ranks."""
        return self.outputs if self.is_main else None

    def prepare(self, cfg: Config, point: ResumePoint) -> None:
        """Everything that can be checked before the first step: the output folder, an earlier run, the val list
        (``cfg``: the config the run trains with)."""
        self.cfg = cfg
        if self.is_main:
            ensure_output_dir(self.outputs.check_folder(RunCheckpoints.SUB), "train.save_dir")  # not a link
            for sub in ("", RunCheckpoints.SUB):  # what an interrupted write of this run's files left
                self.outputs.remove_partials(sub)
            if point.path is None:
                self._fresh_start()
            self.outputs.refuse_foreign([n for n in RUN_FILES if not self._is_user_config(n)])
        else:
            ensure_output_dir(self.save_dir, "train.save_dir")
        if cfg.train.eval_interval:
            read_list(os.path.join(cfg.data.data_root, cfg.data.val_list), cfg.data.data_root)
        self.records = MetricsLog(self.save_dir / METRICS_NAME, self.outputs) if self.is_main else None
        if self.is_main:
            # this run's record of a sample that stops it
            self.outputs.put_text(os.path.basename(self.error_log), "", kind="log")
        else:
            claim_rank_file(self.error_log, fresh=True)

    def bad_sample_log(self, point: ResumePoint) -> str:
        """This rank's log of skipped samples: emptied for a fresh run, continued on a resume."""
        bad_log = self.save_dir / f"bad_samples_rank{self.rank}.tsv"
        if self.is_main:
            if point.path is None or not bad_log.exists():
                self.outputs.put_text(bad_log.name, "", kind="log")  # a fresh run counts its own skipped samples
            else:
                self.outputs.claim_log(bad_log.name)
        else:  # a fresh run counts its own; a resume continues this rank's earlier file
            claim_rank_file(bad_log, fresh=point.path is None)
        return str(bad_log)

    def drop_records_after(self, step: int) -> None:
        """On a resume: ``metrics.jsonl`` loses the interrupted run's records after the checkpoint's ``step``."""
        if self.records and self.records.truncate_after(step):
            logger.info("metrics.jsonl: dropped the records after step %d (from the interrupted run)", step)

    def evaluated(self, epoch: int) -> bool:
        """True when ``metrics.jsonl`` (rank 0's) records the evaluation after ``epoch``."""
        return any(r.get("kind") == "eval" and r.get("epoch") == epoch for r in self.records.read())

    def write_config(self, class_weights: Optional[List[float]]) -> None:
        """The resolved config as ``config.yaml`` (``train.class_weights auto`` as the weights it gave), unless that
        file is the user's own ``--config``. Rank 0, once the run could start: a failed start keeps the previous
        run's file."""
        if self._is_user_config(CONFIG_NAME):
            logger.info("%s is the config this run was started with: left as it is (the resolved values are in "
                        "train.log)", self.save_dir / CONFIG_NAME)
            return
        cfg = self.cfg
        if cfg.train.class_weights == "auto" and class_weights is not None:
            cfg = replace(cfg, train=replace(cfg.train, class_weights=list(class_weights)))
        self.outputs.put_text(CONFIG_NAME, config_yaml(cfg))

    def _is_user_config(self, name: str) -> bool:
        target = self.save_dir / name
        return name == CONFIG_NAME and bool(self.cfg.source) and os.path.isfile(self.cfg.source) and \
            target.exists() and os.path.samefile(self.cfg.source, target)

    def _fresh_start(self) -> None:
        """A fresh run in a folder holding another run: refused, unless ``overwrite`` (then that run's files go)."""
        out = self.outputs
        refuse_fresh_over_earlier(out)
        earlier = [RunCheckpoints.SUB + "/", METRICS_NAME, CURVES_NAME, "bad_samples_rank"]
        removed = out.remove_owned([n for n in out.owned() if any(n.startswith(e) for e in earlier)])
        if removed:
            logger.warning("--overwrite: removed %d files of the earlier run in %s (%s)", len(removed), self.save_dir,
                           ", ".join(removed[:5]) + (" ..." if len(removed) > 5 else ""))


def refuse_fresh_over_earlier(out: OutputFolder) -> None:
    """One line when a fresh run would replace another run's files in ``out`` (its ``train.save_dir``):
    checkpoints this program did not record always; the earlier run's own files unless ``out.overwrite``."""
    ckpt_dir = out.path(RunCheckpoints.SUB)
    foreign = [f"{RunCheckpoints.SUB}/{p.name}" for _, p in epoch_checkpoints(ckpt_dir)
               if not out.unchanged(f"{RunCheckpoints.SUB}/{p.name}")]
    if (ckpt_dir / "best.ckpt").exists() and not out.unchanged(f"{RunCheckpoints.SUB}/best.ckpt"):
        foreign.append(f"{RunCheckpoints.SUB}/best.ckpt")
    if foreign:
        raise OutputExistsError(f"train.save_dir {out.root} holds checkpoints this program did not record "
                                f"({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}); continue that run "
                                f"with --resume auto, or move them away / choose another train.save_dir to start fresh")
    out.refuse_earlier([RunCheckpoints.SUB + "/", METRICS_NAME], "a fresh run would replace it: continue it with "
                       "--resume auto, replace that run's files with --overwrite, or choose another train.save_dir")
