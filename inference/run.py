"""Run an exported model on every preprocessed input file (the 310 app's contract, in Python).

python inference/run.py --work WORK --model pspnet50.onnx [--backend onnx|mindir]
Reads WORK/input/*.bin, writes WORK/output/*_0.bin (float32 logits).
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True)
    p.add_argument("--model", required=True, help=".onnx or .mindir exported with export.py")
    p.add_argument("--backend", default=None, choices=["onnx", "mindir", "lite"],
                   help="default: from the file extension (lite: MindSpore Lite's runtime, as on the 310)")
    p.add_argument("--lite-target", default="cpu", choices=["cpu", "ascend"], help="device for --backend lite")
    p.add_argument("--device-id", type=int, default=0, help="device for --backend lite with ascend")
    a = p.parse_args(argv)
    from src.data.dataset import DataError
    from src.errors import PSPNetError
    from src.evaluation.backends import lite_predict, mindir_predict, onnx_predict
    from src.evaluation.offline import META, run_inputs
    from src.logging_setup import setup_logging

    setup_logging()
    log = logging.getLogger("run")
    try:
        meta_path = os.path.join(a.work, META)
        if not os.path.isfile(meta_path):
            raise DataError(f"{meta_path} not found: run inference/preprocess.py first")
        meta = json.load(open(meta_path))
        b, _, h, w = meta["input_shape"]
        classes = meta["protocol"]["classes"]
        backend = a.backend or ("mindir" if a.model.endswith(".mindir") else "onnx")
        if backend == "lite":
            predict = lite_predict(a.model, b, (h, w), classes, a.lite_target, a.device_id)
        elif backend == "mindir":
            from src.device import setup_device

            setup_device("CPU", "GRAPH")
            predict = mindir_predict(a.model, b, (h, w), classes)
        else:
            predict = onnx_predict(a.model, b, (h, w), classes)
        n = run_inputs(a.work, predict)
    except PSPNetError as exc:
        log.error("error: %s", exc)
        return 2
    log.info("wrote %d output files to %s", n, os.path.join(a.work, "output"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
