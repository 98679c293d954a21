"""Segment images (files or folders) and write color masks and overlays with the dataset palette.

python inference/predict.py --config config/X.yaml --model PATH [--backend ms|mindir|onnx] --input A.jpg DIR ... --out OUT
Any image size: the evaluation protocol (sliding windows, flip) is used.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--model", required=True, help=".ckpt (backend ms), .mindir or .onnx")
    p.add_argument("--backend", default=None, choices=["ms", "mindir", "onnx"], help="default: from the extension")
    p.add_argument("--input", nargs="+", required=True, help="image files and/or folders")
    p.add_argument("--out", required=True, help="writes OUT/gray, OUT/color, OUT/overlay")
    p.add_argument("--opts", nargs="*", default=[])
    a = p.parse_args(argv)
    from pathlib import Path

    from src.errors import PSPNetError
    from src.config import load_config
    from src.data.labels import dataset_spec
    from src.device import setup_device
    from src.evaluation.backends import make_predict
    from src.evaluation.evaluate import collect_images, predict_images
    from src.evaluation.inference import protocol_from_config
    from src.logging_setup import setup_logging

    setup_logging()
    log = logging.getLogger("predict")
    try:
        cfg = load_config(a.config, a.opts)
        backend = a.backend or {".mindir": "mindir", ".onnx": "onnx"}.get(Path(a.model).suffix, "ms")
        if backend != "onnx":
            setup_device(cfg.device.target, cfg.device.mode, cfg.device.device_id, quiet=cfg.device.quiet)
        protocol = protocol_from_config(cfg.data, cfg.eval)
        predict = make_predict(backend, a.model, cfg.model, cfg.data.classes, protocol.batch_size,
                               (protocol.crop_h, protocol.crop_w))
        spec = dataset_spec(cfg.data.dataset, cfg.data.classes, cfg.data.class_names)
        written = predict_images(collect_images(a.input), predict, protocol, Path(a.out), spec.palette)
    except PSPNetError as exc:
        log.error("error: %s", exc)
        return 2
    log.info("wrote %d masks to %s (gray/, color/, overlay/)", len(written), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
