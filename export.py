"""Export PSPNet (eval network, no aux head) to MINDIR / AIR / ONNX and verify the result.

python export.py --config config/X.yaml --ckpt PATH --file_format MINDIR|AIR|ONNX [--batch_size N]
                 [--height H --width W] [--file_name F] [--output logits|softmax|argmax]
"""
import sys

if __name__ == "__main__":
    from src.cli import main

    sys.exit(main(command="export", description=__doc__))
