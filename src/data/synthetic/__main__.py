"""``python -m src.data.synthetic`` (the documented command): an alias of ``python -m src synthetic``."""
import sys

from src.cli import main

sys.exit(main(command="synthetic", description="Write a synthetic VOC-format segmentation data set."))
