"""Training-pipeline throughput (images/s) on the synthetic set, crop 473, with 1 and 2 workers.

Usage (from the repository folder): python -m benchmarks.bench_data [--num 64] [--size 500] [--crop 473] [--batch 2] [--json out.json]
"""
import argparse
import os
import tempfile
import time

from src.outputs.atomic import write_json



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--size", type=int, default=500, help="image width (height 3/4), 500 ~ VOC")
    p.add_argument("--crop", type=int, default=473)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--json", default="")
    a = p.parse_args()
    from src.config import config_from_dict
    from src.data.pipeline import build_train_pipeline
    from src.data.synthetic import generate
    from src.system.device import setup_device

    setup_device("CPU", "GRAPH")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        generate(root, "shapes", num=a.num, size=a.size, seed=0, val_fraction=0.05)
        for workers in (1, 2):
            cfg = config_from_dict({"data": {"dataset": "synthetic", "data_root": root, "classes": 6,
                                             "train_list": "train.txt", "workers": workers},
                                    "train": {"crop_h": a.crop, "crop_w": a.crop, "batch_size": a.batch}})
            ds, source, _ = build_train_pipeline(cfg.data, cfg.train, end_epoch=2)
            it = iter(ds.create_tuple_iterator(num_epochs=1, output_numpy=True))
            next(it)  # start-up (worker processes) excluded
            t0, count = time.perf_counter(), 0
            for batch in it:
                count += batch[0].shape[0]
            dt = time.perf_counter() - t0
            rows.append({"workers": workers, "images": count, "seconds": round(dt, 2),
                         "images_per_s": round(count / dt, 1)})
    print(f"training pipeline, synthetic {a.size}x{a.size * 3 // 4} JPEG -> crop {a.crop}, batch {a.batch}, "
          f"{os.cpu_count()} cores")
    for r in rows:
        print(f"  workers={r['workers']}: {r['images_per_s']:.1f} images/s ({r['images']} images in {r['seconds']} s)")
    if a.json:
        write_json(a.json, rows)


if __name__ == "__main__":
    main()
