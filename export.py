"""Export PSPNet (eval network, no aux head) to MINDIR / AIR / ONNX and verify the result.

python export.py --config config/X.yaml --ckpt PATH --file_format MINDIR|AIR|ONNX [--batch_size N]
                 [--height H --width W] [--file_name F] [--output logits|softmax|argmax]
"""
import argparse
import json
import logging
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--file_format", required=True, choices=["MINDIR", "AIR", "ONNX", "mindir", "air", "onnx"])
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--height", type=int, default=None, help="input height (default eval.test_h)")
    p.add_argument("--width", type=int, default=None, help="input width (default eval.test_w)")
    p.add_argument("--file_name", default=None, help="output path without or with extension (default pspnet<layers>)")
    p.add_argument("--output", default="logits", choices=["logits", "softmax", "argmax"])
    p.add_argument("--no-verify", action="store_true", help="skip the reload/ONNX Runtime comparison")
    p.add_argument("--opts", nargs="*", default=[])
    a = p.parse_args(argv)

    from src.errors import PSPNetError
    from src.config import load_config
    from src.device import setup_device
    from src.exporting import export_model
    from src.logging_setup import setup_logging

    setup_logging()
    log = logging.getLogger("export")
    try:
        cfg = load_config(a.config, a.opts)
        target = setup_device(cfg.device.target, "GRAPH", cfg.device.device_id, quiet=cfg.device.quiet)
        height = cfg.eval.test_h if a.height is None else a.height
        width = cfg.eval.test_w if a.width is None else a.width
        result = export_model(cfg.model, cfg.data.classes, a.ckpt, a.file_format, a.batch_size, height, width,
                              a.file_name or f"pspnet{cfg.model.layers}", target, a.output, not a.no_verify,
                              cfg.data.mean, cfg.data.std)
    except PSPNetError as exc:
        log.error("error: %s", exc)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
