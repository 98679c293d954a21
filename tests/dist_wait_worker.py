"""Run under msrun by tests/integration/test_data_parallel.py (which puts the repository on PYTHONPATH): rank 0 is busy for a while (as when it saves a checkpoint)
while rank 1 already waits in an all-reduce.

python tests/dist_wait_worker.py OUT_DIR SECONDS
"""
import json
import sys
import time
from pathlib import Path



def main() -> None:
    import os

    import numpy as np
    from src.system.device import setup_device
    from src.system.distributed import allreduce_sum, init_distributed

    out, seconds = Path(sys.argv[1]), float(sys.argv[2])
    setup_device("CPU", "PYNATIVE", seed=5)
    rank, size = init_distributed()
    if rank == 0:
        time.sleep(seconds)
    start = time.perf_counter()
    total = allreduce_sum(np.full(1, rank + 1, np.int64), size)
    (out / f"wait_rank_{rank}.json").write_text(json.dumps({
        "sum": int(total[0]), "waited_s": time.perf_counter() - start,
        "timeout": os.environ.get("MS_CPU_COMM_OP_TIMEOUT")}))


if __name__ == "__main__":
    main()
