"""Checkpoint files: strict loading (the model zoo's names mapped), atomic saving with a checksum.

Reading a file's entries: :mod:`src.checkpoint.format`; a training run's checkpoints (optimizer state, loop
counters, schedule; resume, rotation, best): :mod:`src.train.run_state`."""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn

from src.checkpoint.format import (ZOO_PSPNET_PREFIXES, CheckpointError, from_zoo_names, read_checkpoint, zoo_kind,
                                   zoo_spelling)
from src.config import PYRAMIDS
from src.errors import shown, shown_names
from src.outputs.atomic import ensure_output_file, file_sha256, free_bytes, write_text
from src.outputs.errors import OutputPathError
from src.outputs.folder import OutputFolder
from src.outputs.writers import written_file

logger = logging.getLogger(__name__)

# Entries of a training checkpoint that are not network weights: ours (src.train.run_state writes them) and
# those of MindSpore's own optimizers and loss scaling (the model zoo's checkpoints carry them).
TRAINING_STATE_PREFIXES = ("global_step", "accum.", "stat.", "epoch_num", "step_num", "best_miou", "schedule.",
    "local_best_miou", "moments.", "learning_rate", "momentum", "scale_sense", "current_iterator_step",
    "last_overflow_iterator_step", "class_names", "class_weights", "pyramid_form")
# A training checkpoint's class names, in the classifier's order: UTF-8 JSON (a list of strings) as one uint8
# array. Read back only where they are used (model.pretrained_head match), checked and bounded: a file can be hostile.
CLASS_NAMES_ENTRY = "class_names"
MAX_CLASS_NAMES_BYTES = 1 << 20  # as large as a whole config may be; 150 names take about 2 KB
# The pyramid form (model.pyramid, resolved) a training checkpoint's network computed: its name as ASCII (uint8), so
# that a network fine-tuned from a model zoo PSPNet is evaluated and exported in the form it was trained in.
PYRAMID_ENTRY = "pyramid_form"
ZOO_BACKBONE_MARKS = ("conv1.", "layer1.0.down_sample_layer.")  # enough of the zoo's ResNet names to tell its kind


class NonFiniteWeights(CheckpointError):
    """A checkpoint whose weights hold NaN or infinite values."""


def match_parameters(net_shapes: Mapping[str, Tuple[int, ...]], ckpt: Mapping[str, np.ndarray],
                     allow_missing: Sequence[str] = (), allow_unexpected: Sequence[str] = ()
                     ) -> Tuple[List[str], List[str], List[str]]:
    """Compare names and shapes; return (missing, unexpected, mismatched) after the allowances.

    ``allow_missing``/``allow_unexpected`` are name prefixes (e.g. ``aux.``)
    that may be absent from / extra in the checkpoint.
    """
    def allowed(name: str, prefixes: Iterable[str]) -> bool:
        return any(name.startswith(p) for p in prefixes)

    missing = [n for n in net_shapes if n not in ckpt and not allowed(n, allow_missing)]
    unexpected = [n for n in ckpt if n not in net_shapes and not allowed(n, allow_unexpected)]
    mismatched = [f"{n}: checkpoint {tuple(ckpt[n].shape)} vs network {tuple(net_shapes[n])}"
                  for n in net_shapes if n in ckpt and tuple(ckpt[n].shape) != tuple(net_shapes[n])]
    return missing, unexpected, mismatched


def _format_problems(source: str, missing: List[str], unexpected: List[str], mismatched: List[str],
                     zoo: str = "", pretrained: bool = False) -> str:
    """One line: what does not match, and the likely fix when the mismatch has a known cause. For a file in the
    model zoo's names (``zoo``: its kind), each of our names is followed by the file's spelling of it;
    ``pretrained``: the file is model.pretrained (a fine-tuner's other class set has its own fix)."""
    def spelled(items: List[str]) -> List[str]:  # an item is a name, or "name: why" for a mis-shaped one
        names = [i.split(":")[0] for i in items]
        theirs = [zoo_spelling(n, zoo) if zoo else n for n in names]
        return [i if t == n else f"{i} (in the file: {t})" for i, n, t in zip(items, names, theirs)]

    parts = []  # missing and mis-shaped names are the network's own; unexpected ones come from the file
    for title, items in (("missing from the checkpoint", spelled(missing)), ("unexpected in the checkpoint",
                         [shown(n) for n in unexpected]), ("shape mismatch", spelled(mismatched))):
        if items:
            parts.append(f"{title} ({len(items)}): " + ", ".join(items[:6]) + (" ..." if len(items) > 6 else ""))
    hint = _hint(missing, unexpected, mismatched, pretrained)
    return f"checkpoint {source} does not match the network: {'; '.join(parts)}{hint}"


def _hint(missing: List[str], unexpected: List[str], mismatched: List[str], pretrained: bool = False) -> str:
    """The fix for the mismatches whose cause is known from their names and shapes."""
    if missing and not mismatched and not any(n.startswith(("layer", "ppm.", "cls.", "aux.")) for n in unexpected) \
            and "layer0.0.weight" in missing and "layer1.0.conv1.weight" in missing:
        return " - it holds none of this network's weights" + (" (only training state)" if not unexpected else "")
    if missing and not mismatched and all(n.startswith(("ppm.", "cls.", "aux.")) for n in missing):
        return " - a backbone (ImageNet) checkpoint: give it as model.pretrained, not as the model"
    if any(re.match(r"layer0\.0\.weight: checkpoint \(\d+, \d+, 7, 7\)", m) for m in mismatched) or \
            ("layer0.3.weight" in missing and "layer0.6.weight" in missing):
        return " - a 7x7 stem (torchvision ResNet): set model.deep_stem false"
    heads_only = mismatched and not missing and not unexpected and \
        all(m.startswith(("cls.4.", "aux.4.")) for m in mismatched)
    if pretrained and heads_only:
        counts = re.match(r"cls\.4\.bias: checkpoint \((\d+),\) vs network \((\d+),\)",
                          next((m for m in mismatched if m.startswith("cls.4.bias:")), ""))
        numbers = f" (the checkpoint's {counts.group(1)}, this network's {counts.group(2)})" if counts else ""
        return (f" - another class count{numbers}: to fine-tune to your classes set model.pretrained_head match "
                f"(keep the rows of the classes both share, by name) or fresh (new heads); to keep the "
                f"checkpoint's classes set data.classes to its count")
    if any(m.startswith(("cls.4.", "aux.4.")) for m in mismatched):
        return " - another class count: set data.classes to the checkpoint's"
    if any(m.startswith("ppm.") for m in mismatched) or any(n.startswith("ppm.features.") for n in missing):
        return " - another pyramid: set model.bins / model.use_ppm to the checkpoint's"
    if missing and all(n.startswith(("layer3.", "layer4.", "layer2.")) for n in missing):
        return " - a shallower ResNet: set model.layers to the checkpoint's depth"
    return ""


def non_finite_names(params: Mapping[str, np.ndarray]) -> List[str]:
    """Names of the floating-point arrays in ``params`` that hold NaN or infinite values."""
    return [n for n, v in params.items()
            if np.asarray(v).dtype.kind == "f" and not np.isfinite(np.asarray(v)).all()]


def load_params_strict(net: nn.Cell, params: Mapping[str, np.ndarray], source: str = "<memory>",
                       allow_missing: Sequence[str] = (), allow_unexpected: Sequence[str] = (),
                       allow_non_finite: bool = False, zoo: str = "", pretrained: bool = False) -> List[str]:
    """Load ``params`` into ``net``; every network parameter must be present with its exact shape.

    Raises :class:`CheckpointError` listing every missing, unexpected and
    mis-shaped name, and every parameter holding NaN/inf (unless
    ``allow_non_finite``).  Returns the names that were loaded.  Names skipped by an
    allowance are logged, never dropped silently. ``pretrained``: the file is model.pretrained (the hints
    name the fine-tuning keys).
    """
    net_params = {p.name: p for p in net.get_parameters()}
    shapes = {n: tuple(p.shape) for n, p in net_params.items()}
    missing, unexpected, mismatched = match_parameters(shapes, params, allow_missing, allow_unexpected)
    if missing or unexpected or mismatched:
        raise CheckpointError(_format_problems(source, missing, unexpected, mismatched, zoo, pretrained))
    skipped_extra = sorted(n for n in params if n not in net_params)
    skipped_missing = sorted(n for n in net_params if n not in params)
    if skipped_extra:
        logger.info("%s: %d checkpoint entries not used by this network (allowed): %s", source,
                    len(skipped_extra), shown_names(skipped_extra, 10))
    if skipped_missing:
        logger.warning("%s: %d network parameters keep their initial values (allowed): %s", source,
                       len(skipped_missing), shown_names(skipped_missing, 10))
    _check_dtypes(net_params, params, source)
    bad = non_finite_names({n: params[n] for n in net_params if n in params})
    if bad and not allow_non_finite:
        raise NonFiniteWeights(f"{source}: {len(bad)} parameters hold NaN or infinite values: {shown_names(bad, 10)}; a network "
                              f"with them predicts nonsense. Set model.allow_non_finite true to load it anyway")
    if bad:
        logger.warning("%s: loading %d parameters with NaN or infinite values (allowed): %s", source, len(bad),
                       shown_names(bad, 10))
    loaded = []
    for name, p in net_params.items():
        if name in params:
            p.set_data(ms.Tensor(np.asarray(params[name]), p.dtype))
            loaded.append(name)
    logger.info("%s: loaded %d parameters", source, len(loaded))
    return loaded


def _check_dtypes(net_params: Mapping[str, ms.Parameter], params: Mapping[str, np.ndarray], source: str) -> None:
    """Integers or booleans for float parameters are refused; other conversions (float64 -> float32) are said."""
    converted: Dict[str, int] = {}
    for name, p in net_params.items():
        if name not in params:
            continue
        have, want = np.asarray(params[name]).dtype, ms.dtype_to_nptype(p.dtype)
        if have == want:
            continue
        if np.dtype(want).kind == "f" and have.kind != "f":
            raise CheckpointError(f"{source}: {name} is {have} in the checkpoint, the network's is "
                                  f"{np.dtype(want)}: these are not weights this network was saved with")
        key = f"{have} -> {np.dtype(want)}"
        converted[key] = converted.get(key, 0) + 1
    if converted:
        logger.info("%s: converted %s", source, ", ".join(f"{n} tensors {k}" for k, n in converted.items()))


def load_checkpoint_strict(net: nn.Cell, path: str | os.PathLike, allow_missing: Sequence[str] = (),
                           allow_unexpected: Sequence[str] = (), allow_non_finite: bool = False) -> List[str]:
    """Read ``path`` and load it strictly into ``net`` (see :func:`load_params_strict`).

    Training-state entries stored beside the weights (optimizer moments,
    ``global_step``, ``epoch``...) are recognised by :func:`is_training_state`
    and not treated as unexpected weights; the model zoo's names are mapped (:func:`read_weights`).
    """
    weights, zoo = read_weights(path)
    return load_params_strict(net, weights, str(path), allow_missing, allow_unexpected, allow_non_finite, zoo)


def read_weights(path: str | os.PathLike) -> Tuple[Dict[str, np.ndarray], str]:
    """The network weights of checkpoint ``path`` (training state left out) under this network's names, and the
    model zoo's kind of names the file had ("" for ours): a checkpoint of the MindSpore model zoo's PSPNet or of
    its ResNet backbone is renamed (:func:`from_zoo_names`)."""
    weights, zoo, _ = read_weights_and_state(path)
    return weights, zoo


def read_weights_and_state(path: str | os.PathLike) -> Tuple[Dict[str, np.ndarray], str, Dict[str, np.ndarray]]:
    """:func:`read_weights` and, third, the file's training-state entries (e.g. :data:`CLASS_NAMES_ENTRY`), from
    one read of the file."""
    entries = read_checkpoint(path)
    state = {n: v for n, v in entries.items() if is_training_state(n)}
    weights, zoo = from_zoo_names({n: v for n, v in entries.items() if n not in state}, str(path))
    return weights, zoo, state


def class_names_entry(names: Sequence[str]) -> Optional[np.ndarray]:
    """The :data:`CLASS_NAMES_ENTRY` array recording ``names`` (UTF-8 JSON as uint8); None when it would be
    larger than a reader accepts (:data:`MAX_CLASS_NAMES_BYTES`)."""
    data = json.dumps(list(names), ensure_ascii=False).encode("utf-8")
    return np.frombuffer(data, np.uint8).copy() if len(data) <= MAX_CLASS_NAMES_BYTES else None


def saved_class_names(state: Mapping[str, np.ndarray], source: str) -> Optional[List[str]]:
    """The class names a checkpoint records in :data:`CLASS_NAMES_ENTRY` (None when it has none), checked: one
    uint8 array of at most :data:`MAX_CLASS_NAMES_BYTES` bytes holding UTF-8 JSON, a list of distinct, non-empty
    strings; anything else is one CheckpointError line naming ``source``."""
    if CLASS_NAMES_ENTRY not in state:
        return None
    value = np.asarray(state[CLASS_NAMES_ENTRY])
    where = f"{source}: its {CLASS_NAMES_ENTRY} entry"
    fix = "the file is damaged or was not written by this program"
    if value.dtype != np.uint8 or value.ndim != 1:
        raise CheckpointError(f"{where} is {value.dtype} {list(value.shape)}, not the UTF-8 text (uint8, one "
                              f"dimension) this program writes; {fix}")
    if value.size > MAX_CLASS_NAMES_BYTES:
        raise CheckpointError(f"{where} holds {value.size} bytes, more than class names take (at most "
                              f"{MAX_CLASS_NAMES_BYTES}); {fix}")
    try:
        names = json.loads(value.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{where} is not UTF-8 JSON ({type(exc).__name__}: {shown(exc, 80)}); {fix}") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise CheckpointError(f"{where} is {shown(names, 80)}, not a list of class names (non-empty strings); {fix}")
    seen, repeated = set(), set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    if repeated:
        raise CheckpointError(f"{where} names a class twice ({shown_names(sorted(repeated), 3, 40)}); {fix}")
    return names


def pyramid_entry(form: str) -> np.ndarray:
    """The :data:`PYRAMID_ENTRY` array recording ``form`` ("semseg" or "zoo")."""
    if form not in PYRAMIDS:
        raise ValueError(f"pyramid form must be one of {PYRAMIDS}, got {form!r}")
    return np.frombuffer(form.encode("ascii"), np.uint8).copy()


def saved_pyramid(state: Mapping[str, np.ndarray], source: str) -> Optional[str]:
    """The pyramid form a checkpoint records in :data:`PYRAMID_ENTRY` (None when it has none: an older file, or
    another program's), checked: anything but the ASCII of "semseg" or "zoo" is one CheckpointError line."""
    if PYRAMID_ENTRY not in state:
        return None
    value = np.asarray(state[PYRAMID_ENTRY])
    text = value.tobytes().decode("ascii", "replace") if value.dtype == np.uint8 and value.ndim == 1 and \
        value.size <= 16 else None
    if text not in PYRAMIDS:
        raise CheckpointError(f"{source}: its {PYRAMID_ENTRY} entry is not one of {', '.join(PYRAMIDS)} as "
                              f"ASCII (uint8, one dimension; got {value.dtype} {list(value.shape)}); the file is "
                              f"damaged or was not written by this program")
    return text


def read_pyramid_evidence(path: str | os.PathLike) -> Tuple[str, Optional[str]]:
    """What tells checkpoint ``path``'s pyramid form, from the entries that carry it: the kind of model zoo names
    (:func:`src.checkpoint.format.zoo_kind`, from the few names that decide it) and the form the file records
    (:func:`saved_pyramid`)."""
    entries = read_checkpoint(path, ZOO_PSPNET_PREFIXES + ZOO_BACKBONE_MARKS + (PYRAMID_ENTRY,))
    return zoo_kind(n for n in entries if n != PYRAMID_ENTRY), saved_pyramid(entries, str(path))


def is_training_state(name: str) -> bool:
    """True for checkpoint entries that are optimizer/loop state, not network weights."""
    return name.startswith(TRAINING_STATE_PREFIXES)


def save_checkpoint_atomic(entries: List[Dict], path: str | os.PathLike, folder: Optional[OutputFolder] = None) -> Path:
    """Save ``[{'name', 'data'}]`` to ``path`` via a temporary file and a rename (the output owner's).

    A crash while saving leaves either the old file or the new one, never a
    partial checkpoint under ``path``.  The file's SHA-256 is then written to
    ``<name>.sha256`` (:func:`verify_checksum` reads it at resume).  With
    ``folder``, ``path`` is a name inside that output folder and both files
    are recorded as its outputs.
    """
    full = folder.path(str(path)) if folder is not None else Path(path)
    if folder is None:
        ensure_output_file(full, "checkpoint")
    else:
        folder.claim(str(path))
        folder.claim(str(path) + CHECKSUM_SUFFIX, check_only=True)
    try:  # ms.save_checkpoint into the path the owner gives (a private folder: MindSpore's own temporary stays there)
        if folder is not None:
            folder.put_written(str(path), lambda tmp: ms.save_checkpoint(entries, tmp))
            digest = folder.entries[str(path)]["sha256"]
        else:
            digest = written_file(lambda tmp: ms.save_checkpoint(entries, tmp), full)
    except (OSError, RuntimeError) as exc:  # MindSpore wraps a failed write in a RuntimeError
        need = sum(int(getattr(e["data"], "nbytes", 0)) for e in entries)
        reason = str(exc).split(": nothing was replaced")[0] if isinstance(exc, OutputPathError) else exc
        if isinstance(exc, RuntimeError) and not isinstance(exc, OSError):
            reason = (str(exc).splitlines() or ["write failed"])[0][:300]
        raise CheckpointError(
            f"cannot save checkpoint {full}: {reason}; it needs about {need / 2**20:.1f} MiB and "
            f"{free_bytes(full.parent) / 2**20:.1f} MiB are free there. Nothing was replaced: an earlier file "
            f"of that name is intact") from None
    try:
        text = f"{digest}  {full.name}\n"
        if folder is not None:
            folder.put_text(str(path) + CHECKSUM_SUFFIX, text)
        else:
            write_text(checksum_path(full), text)
    except OSError as exc:  # the checkpoint itself is complete and in place
        logger.warning("%s is saved, but its checksum file could not be written (%s); it will be read without "
                       "verification", full, exc.strerror or exc)
    return full


CHECKSUM_SUFFIX = ".sha256"


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of checkpoint ``path`` is kept: ``<name>.sha256`` beside it."""
    return Path(str(path) + CHECKSUM_SUFFIX)


def verify_checksum(path: str | os.PathLike) -> Optional[bool]:
    """True/False: ``path`` matches / does not match the checksum saved beside it; None: there is none.

    This, not an exception from the reader, decides whether a checkpoint is
    damaged: a reader can fail for other reasons (an interrupt, memory).
    """
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(encoding="utf-8", errors="replace")[:200].split()
    return bool(text) and text[0] == file_sha256(path)


def arrays_to_entries(params: Mapping[str, np.ndarray]) -> List[Dict]:
    """``name -> array`` into the list form ``ms.save_checkpoint`` accepts."""
    return [{"name": n, "data": ms.Tensor(np.asarray(v))} for n, v in params.items()]
