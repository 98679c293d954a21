"""Run under msrun by tests/integration/test_data_parallel.py (which puts the repository on PYTHONPATH): train one step, then resume with --resume auto.

python tests/dist_resume_worker.py CONFIG_JSON OUT_DIR shared|separate
With ``separate`` each rank has its own train.save_dir (nodes without a shared file system): only
rank 0's holds a checkpoint, so the resume must fail on every rank with one clear error.
"""
import json
import sys
from pathlib import Path



def main() -> None:
    from src.config import config_from_dict
    from src.system.device import setup_device
    from src.system.distributed import init_distributed
    from src.errors import PSPNetError
    from src.system.logging_setup import setup_logging
    from src.train.loop import Trainer

    cfg = config_from_dict(json.loads(Path(sys.argv[1]).read_text()), sys.argv[1])
    out, mode = Path(sys.argv[2]), sys.argv[3]
    setup_device("CPU", "PYNATIVE", seed=5)
    rank, size = init_distributed()
    setup_logging(rank)
    if mode == "separate":
        cfg.train.save_dir = str(Path(cfg.train.save_dir) / f"node_of_rank{rank}")
    Trainer(cfg, "CPU", rank, size).run()  # ends with a barrier, so rank 0's last checkpoint is on disk
    result = {"rank": rank}
    try:
        resumed = Trainer(cfg, "CPU", rank, size, resume="auto")
        result.update(step=resumed.state.step, epoch=resumed.state.epoch)
    except PSPNetError as exc:
        result["error"] = str(exc)
    (out / f"{mode}_rank_{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
