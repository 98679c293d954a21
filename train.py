"""Train PSPNet.  python train.py --config config/X.yaml [--opts KEY VALUE ...] [--resume PATH|auto]

Single device by default; under msrun (or a rank-table launcher) it runs data-parallel.
"""
import sys

if __name__ == "__main__":
    from src.cli import main

    sys.exit(main(command="train", description=__doc__))
