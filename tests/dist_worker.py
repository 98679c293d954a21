"""Run under msrun by tests/integration/test_data_parallel.py (which puts the repository on PYTHONPATH): one data-parallel training step, then dump this rank's weights.

python tests/dist_worker.py CONFIG_JSON OUT_DIR
"""
import json
import sys
from pathlib import Path

import numpy as np



def main() -> None:
    from src.config import config_from_dict
    from src.system.device import setup_device
    from src.system.distributed import init_distributed
    from src.system.logging_setup import setup_logging
    from src.train.loop import Trainer

    cfg = config_from_dict(json.loads(Path(sys.argv[1]).read_text()), sys.argv[1])
    out = Path(sys.argv[2])
    setup_device("CPU", "PYNATIVE", seed=5)
    rank, size = init_distributed()
    setup_logging(rank)
    trainer = Trainer(cfg, "CPU", rank, size)
    if rank == 0:
        np.savez(out / "init.npz", **{p.name: p.asnumpy() for p in trainer.net.get_parameters()})
    summary = trainer.run()
    np.savez(out / f"rank_{rank}.npz", **{p.name: p.asnumpy() for p in trainer.net.get_parameters()})
    (out / f"rank_{rank}.json").write_text(json.dumps({"rank": rank, "size": size, "step": summary["step"],
                                                       "best_miou": summary["best_miou"]}))


if __name__ == "__main__":
    main()
