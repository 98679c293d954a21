"""Checkpoints, in one place: the ``.ckpt`` format read entry by entry and the model zoo's names (``format.py``);
strict loading into a network and atomic saving through the output owner with a ``.sha256`` (``files.py``). A
training run's resume and rotation use these from :mod:`src.train.run_state`; PyTorch weights: :mod:`src.convert`.

The names below are the package's public ones: ``from src.checkpoint import X`` needs no module name."""
from src.checkpoint.format import (CKPT_DTYPES, MAX_CKPT_BYTES, ZOO_PSPNET_PREFIXES, CheckpointError, from_zoo_names,
                                   read_checkpoint, zoo_kind, zoo_spelling)
from src.checkpoint.files import (CHECKSUM_SUFFIX, CLASS_NAMES_ENTRY, PYRAMID_ENTRY, TRAINING_STATE_PREFIXES,
                                  NonFiniteWeights, arrays_to_entries, checksum_path, class_names_entry,
                                  is_training_state, load_checkpoint_strict, load_params_strict, match_parameters,
                                  non_finite_names, pyramid_entry, read_pyramid_evidence, read_weights,
                                  read_weights_and_state, save_checkpoint_atomic, saved_class_names, saved_pyramid,
                                  verify_checksum)

__all__ = ["CKPT_DTYPES", "MAX_CKPT_BYTES", "ZOO_PSPNET_PREFIXES", "CheckpointError", "from_zoo_names",
           "read_checkpoint", "zoo_kind", "zoo_spelling", "CHECKSUM_SUFFIX", "CLASS_NAMES_ENTRY", "PYRAMID_ENTRY",
           "TRAINING_STATE_PREFIXES", "NonFiniteWeights", "arrays_to_entries", "checksum_path", "class_names_entry",
           "is_training_state", "load_checkpoint_strict", "load_params_strict", "match_parameters",
           "non_finite_names", "pyramid_entry", "read_pyramid_evidence", "read_weights", "read_weights_and_state",
           "save_checkpoint_atomic", "saved_class_names", "saved_pyramid", "verify_checksum"]
