"""Fine-tuning across class sets: which rows of model.pretrained's classifiers this network's classes get.

``model.pretrained_head`` chooses: ``strict`` loads every weight as it is (the class counts must agree),
``fresh`` leaves the last layer of both heads (``cls.4.*``, ``aux.4.*``) at its initial values, ``match``
copies the rows of the classes this config and the checkpoint share by name and leaves the rest initial.
Every other weight is loaded strictly in all three (:func:`src.checkpoint.load_params_strict`).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from mindspore import nn

from src.checkpoint.files import load_params_strict, read_weights_and_state, saved_class_names
from src.checkpoint.format import CheckpointError
from src.config import Config, DataConfig
from src.data.labels import ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES, spec_of
from src.errors import shown, shown_names

logger = logging.getLogger(__name__)

HEAD_LAYERS = ("cls.4.", "aux.4.")  # the last (class-count) layer of the main and the auxiliary head
# The known sets whose names a checkpoint without names is taken to have, when its class count fits one of them.
KNOWN_CLASS_SETS = (("VOC2012", VOC_CLASSES), ("ADE20K", ADE20K_CLASSES), ("Cityscapes", CITYSCAPES_CLASSES))


def named_classes(data_cfg: DataConfig) -> Optional[List[str]]:
    """This config's class names where they name something: ``data.class_names``, else a known data set's;
    None for a custom or synthetic set without names (its ``class_0..`` match nothing by meaning)."""
    if data_cfg.class_names:
        return list(data_cfg.class_names)
    if data_cfg.dataset in ("custom", "synthetic"):
        return None
    return list(spec_of(data_cfg).class_names)


def checkpoint_class_names(count: int, recorded: Optional[Sequence[str]], given: Sequence[str],
                           source: str) -> List[str]:
    """The names of the ``count`` classes of checkpoint ``source``'s classifier: the names it ``recorded``
    (training checkpoints of this program), else ``given`` (model.pretrained_class_names), else a known data
    set's whose class count is ``count``; otherwise one CheckpointError line naming model.pretrained_class_names."""
    if recorded is not None:
        if given and list(given) != list(recorded):
            raise CheckpointError(f"{source} records its class names ({shown_names(recorded, 4, 30)}; "
                                  f"{len(recorded)}) and model.pretrained_class_names gives others "
                                  f"({shown_names(given, 4, 30)}; {len(given)}): remove model.pretrained_class_names "
                                  f"or correct it")
        if len(recorded) != count:
            raise CheckpointError(f"{source} records {len(recorded)} class names for its {count} classes "
                                  f"(cls.4.weight has {count} rows); the file is damaged or was not written by "
                                  f"this program")
        logger.info("%s: class names recorded in the file: %s", source, shown_names(recorded, 8, 30))
        return list(recorded)
    if given:
        if len(given) != count:
            raise CheckpointError(f"model.pretrained_class_names has {len(given)} names but {source} has {count} "
                                  f"classes (cls.4.weight has {count} rows): give one name per row, in order")
        return list(given)
    fits = [(name, names) for name, names in KNOWN_CLASS_SETS if len(names) == count]
    if len(fits) == 1:
        logger.warning("%s records no class names; its %d classes are taken to be %s's (%s): if they are not, "
                       "give them as model.pretrained_class_names", source, count, fits[0][0],
                       shown_names(fits[0][1], 4, 30))
        return list(fits[0][1])
    raise CheckpointError(f"{source} records no class names and its {count} classes are not those of "
                          f"{', '.join(f'{n} ({len(c)})' for n, c in KNOWN_CLASS_SETS)}: give them as "
                          f"model.pretrained_class_names (one per classifier row, in order), or use "
                          f"model.pretrained_head fresh")


def heads_to_load(params: Mapping[str, np.ndarray], net: nn.Cell, mode: str,
                  class_names: Optional[Sequence[str]], ckpt_class_names: Optional[Sequence[str]],
                  source: str) -> Dict[str, np.ndarray]:
    """The arrays of checkpoint ``params`` to load into ``net`` under model.pretrained_head ``mode``.

    ``strict``: ``params`` as they are. ``fresh``: without the heads' last layers (they keep ``net``'s initial
    values). ``match``: those layers built row by row: the row of each of ``class_names`` (this network's, in
    order) that ``ckpt_class_names`` (the checkpoint's rows) also names is the checkpoint's, every other row
    ``net``'s initial one. Everything else is left to the strict load.
    """
    if mode == "strict":
        return dict(params)
    heads = [n for n in params if n.startswith(HEAD_LAYERS)]
    if mode == "fresh":
        logger.info("%s: model.pretrained_head fresh: the heads' last layers keep their initial values (not "
                    "loaded from the file: %s)", source, shown_names(heads, 4) or "none, it has no such layer")
        return {n: v for n, v in params.items() if n not in heads}
    if mode != "match":
        raise CheckpointError(f"model.pretrained_head {shown(mode)}: choose strict, match or fresh")
    if class_names is None or ckpt_class_names is None:
        raise CheckpointError("model.pretrained_head match needs both class lists")  # pretrained_arrays gives them
    for names, what in ((class_names, "data.class_names"), (ckpt_class_names, f"{source}'s class names")):
        seen, repeated = set(), set()
        for name in names:
            (repeated if name in seen else seen).add(name)
        if repeated:
            raise CheckpointError(f"{what} give {shown_names(sorted(repeated), 3, 40)} twice: rows cannot be "
                                  f"matched by name")
    rows = {name: i for i, name in enumerate(ckpt_class_names)}
    kept = [n for n in class_names if n in rows]
    if not kept:
        raise CheckpointError(f"model.pretrained_head match: none of this config's classes "
                              f"({shown_names(class_names, 4, 30)}) is among {source}'s "
                              f"({shown_names(ckpt_class_names, 4, 30)}); use model.pretrained_head fresh")
    net_params = {p.name: p for p in net.get_parameters()}
    out = dict(params)
    for prefix in HEAD_LAYERS:
        weight, bias = prefix + "weight", prefix + "bias"
        if weight not in params and bias not in params or weight not in net_params:
            continue  # a file without the aux head, a network without one: the strict load says what follows
        out[weight], out[bias] = _matched_rows(params, net_params, weight, bias, class_names, rows, source)
    new = [n for n in class_names if n not in rows]
    ours = set(class_names)
    dropped = [n for n in ckpt_class_names if n not in ours]
    logger.info("%s: model.pretrained_head match: kept %d classes (%s); new, initial rows: %d (%s); the "
                "checkpoint's classes dropped: %d (%s)", source, len(kept), shown_names(kept, 10, 30), len(new),
                shown_names(new, 10, 30) or "-", len(dropped), shown_names(dropped, 10, 30) or "-")
    return out


def _matched_rows(params: Mapping[str, np.ndarray], net_params: Mapping, weight: str, bias: str,
                  class_names: Sequence[str], rows: Mapping[str, int], source: str):
    """One head's last layer: the network's initial weight and bias with the shared classes' rows copied."""
    count = len(rows)
    if weight not in params or bias not in params:
        raise CheckpointError(f"{source} holds {weight if weight in params else bias} without "
                              f"{bias if weight in params else weight}: not a classifier layer to match rows of")
    have_w, have_b = np.asarray(params[weight]), np.asarray(params[bias])
    init_w, init_b = net_params[weight].asnumpy().copy(), net_params[bias].asnumpy().copy()
    if have_w.ndim != init_w.ndim or have_w.shape[0] != count or have_w.shape[1:] != init_w.shape[1:] or \
            have_b.shape != (count,):
        raise CheckpointError(f"{source}: {weight} {tuple(have_w.shape)} and {bias} {tuple(have_b.shape)} are not "
                              f"{count} rows of this network's {tuple(init_w.shape[1:])} classifier: more than the "
                              f"class count differs (model.layers, model.width_divisor?)")
    for i, name in enumerate(class_names):
        if name in rows:
            init_w[i], init_b[i] = have_w[rows[name]], have_b[rows[name]]
    return init_w, init_b


def pretrained_arrays(params: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], net: nn.Cell, mode: str,
                      class_names: Optional[Sequence[str]], given_names: Sequence[str],
                      source: str) -> Dict[str, np.ndarray]:
    """The arrays of model.pretrained ``source`` (its weights ``params``, its training state ``state``) to load
    into ``net`` under model.pretrained_head ``mode``: :func:`heads_to_load` with the checkpoint's class names
    found (:func:`checkpoint_class_names`) where ``match`` needs them; ``class_names`` are this network's
    (:func:`named_classes`), ``given_names`` model.pretrained_class_names."""
    if mode != "match":
        if given_names:
            logger.warning("model.pretrained_class_names is used only with model.pretrained_head match (it is "
                           "%s): ignored", mode)
        if mode == "strict" and class_names:
            _warn_other_names(state, class_names, source)
        return heads_to_load(params, net, mode, None, None, source)
    if class_names is None:
        raise CheckpointError("model.pretrained_head match keeps the rows of the classes this config and the "
                              "checkpoint share by name, and this config's classes have none (data.dataset custom "
                              "or synthetic without data.class_names): give data.class_names, or use "
                              "model.pretrained_head fresh")
    if "cls.4.weight" not in params:
        raise CheckpointError(f"{source} holds no classifier (cls.4.weight): no rows to match by class (a backbone "
                              f"needs no model.pretrained_head: leave it strict)")
    count = int(np.asarray(params["cls.4.weight"]).shape[0]) if np.asarray(params["cls.4.weight"]).ndim else 0
    ckpt_names = checkpoint_class_names(count, saved_class_names(state, source), given_names, source)
    return heads_to_load(params, net, mode, class_names, ckpt_names, source)


def _warn_other_names(state: Mapping[str, np.ndarray], class_names: Sequence[str], source: str) -> None:
    """A strict load of a checkpoint that records other class names than this config's: its rows load by
    position, which is right only if the names differ in spelling alone; said, with the key that loads by name."""
    try:
        recorded = saved_class_names(state, source)
    except CheckpointError as exc:  # not used by a strict load; the file's weights are still checked as always
        logger.warning("%s", exc)
        return
    if recorded is not None and len(recorded) == len(class_names) and list(recorded) != list(class_names):
        logger.warning("%s was trained on other classes (%s) than this config's (%s): its classifier rows load by "
                       "position; set model.pretrained_head match to load them by class name", source,
                       shown_names(recorded, 4, 30), shown_names(class_names, 4, 30))


def load_config_pretrained(net, cfg: Config) -> List[str]:
    """``model.pretrained`` into ``net`` as a fresh run loads it (the Trainer, and ``train --plan``)."""
    m = cfg.model
    return load_pretrained(net, m.pretrained, m.allow_non_finite, m.pretrained_head, named_classes(cfg.data),
                           m.pretrained_class_names)


def load_pretrained(net, path: str, allow_non_finite: bool = False, head: str = "strict",
                    class_names: Optional[List[str]] = None, pretrained_class_names: Optional[List[str]] = None
                    ) -> List[str]:
    """ImageNet weights for the backbone, strictly (only ppm/cls/aux may stay initial): this project's names,
    or the model zoo's ``resnet_deepbase.ckpt`` names mapped by name (:func:`src.checkpoint.read_weights`); or a
    trained PSPNet, its heads' last layers as model.pretrained_head ``head`` says (this network's
    ``class_names``, the checkpoint's ``pretrained_class_names``: :func:`pretrained_arrays`)."""
    params, zoo, state = read_weights_and_state(path)
    params = pretrained_arrays(params, state, net, head, class_names, pretrained_class_names or [], path)
    return load_params_strict(net, params, path, allow_missing=("ppm.", "cls.", "aux."), zoo=zoo,
                              allow_non_finite=allow_non_finite, pretrained=True)
