"""Convert PyTorch PSPNet / ResNet weights (.pth) to a MindSpore checkpoint (.ckpt).

Runs without PyTorch.  Examples:
  python convert/convert_weights.py --src resnet50_v2.pth --dst pretrained/resnet50_v2.ckpt
  python convert/convert_weights.py --src train_epoch_50.pth --dst pspnet50_voc.ckpt --kind semseg_pspnet
"""
import os
import runpy

if __name__ == "__main__":  # the bootstrap (docs/ARCHITECTURE.md): run the repository folder, which imports src
    runpy.run_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), run_name="__main__",
                   init_globals={"COMMAND": "convert", "DESCRIPTION": __doc__, "PROG": "convert/convert_weights.py"})
