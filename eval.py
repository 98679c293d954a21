"""Evaluate PSPNet by the reference protocol (sliding window, flip, scales) and report mIoU/mAcc/allAcc.

python eval.py --config config/X.yaml --ckpt PATH [--backend ms|mindir|onnx] [--opts KEY VALUE ...]
"""
import sys

if __name__ == "__main__":
    from src.cli import main

    sys.exit(main(command="eval", description=__doc__))
