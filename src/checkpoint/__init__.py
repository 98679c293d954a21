"""Checkpoints, in one place: the ``.ckpt`` format read entry by entry and the model zoo's names (``format.py``);
strict loading into a network and atomic saving through the output owner with a ``.sha256`` (``files.py``). A
training run's resume and rotation use these from :mod:`src.train.run_state`; PyTorch weights: :mod:`src.convert`.

Import each name from its module: nothing is imported here."""
