"""Convert PyTorch PSPNet / ResNet weights (.pth) to a MindSpore checkpoint (.ckpt).

Runs without PyTorch.  Examples:
  python convert/convert_weights.py --src resnet50_v2.pth --dst pretrained/resnet50_v2.ckpt
  python convert/convert_weights.py --src train_epoch_50.pth --dst pspnet50_voc.ckpt --kind semseg_pspnet
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="PyTorch .pth file (zip or legacy format)")
    parser.add_argument("--dst", required=True, help="MindSpore .ckpt to write")
    parser.add_argument("--kind", default="auto", choices=["auto", "semseg_backbone", "torchvision", "semseg_pspnet"])
    parser.add_argument("--layers", type=int, choices=[50, 101, 152], default=None,
                        help="expected ResNet depth (checked against the file; detected when omitted)")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="drop unknown keys and shape mismatches (listed) instead of refusing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from src.errors import PSPNetError
    from src.device import setup_device
    from src.convert.weights import convert_file

    setup_device("CPU", "PYNATIVE")
    try:
        report = convert_file(args.src, args.dst, args.kind, args.layers, args.allow_mismatch)
    except PSPNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
