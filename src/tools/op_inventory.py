"""Which primitives the Ascend graphs hold, checked against an allowlist that cites MindSpore's docs.

Two graphs are compiled here, on CPU, the way they would run on Ascend: the
training step (``TrainStep`` around the fixed-size network that
``model.graph_form auto`` selects on Ascend: forward, backward and the momentum
update) and the network ``export.py`` writes.  Each is exported to MINDIR and
its nodes counted.  Every primitive must be on the allowlist
(``ascend_op_allowlist.yaml`` beside this file), which gives for each one the
public API it comes from and that API's "Supported Platforms" statement; a
test checks each statement against the docstring of the installed MindSpore
(the API pages on mindspore.cn are generated from those docstrings).

Which engine runs a primitive on Ascend is read from the installed wheel
(:func:`wheel_registrations`): ``mindspore/ops/_op_impl/aicpu`` registers AI
CPU kernels; AI Core kernels show as AKG registrations for Ascend or as ACLNN
kernel classes (``<Op>Ascend``, ``<Op>AclnnKernelMod``) in the Ascend plugin
libraries.  A primitive with an AI CPU registration and no AI Core evidence
is AI CPU only (:func:`aicpu_only`): the graphs must hold none, except those
the allowlist accepts under ``aicpu_accepted`` with a reason.

Not compiled here: what only a multi-device Ascend run adds (SyncBatchNorm,
AllReduce); the allowlist names them separately.
"""
from __future__ import annotations

import importlib
import os
import re
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np
import yaml

from src.config import ModelConfig
from src.errors import PSPNetError

ALLOWLIST = Path(__file__).with_name("ascend_op_allowlist.yaml")
DOCS_URL = "https://www.mindspore.cn/docs/en/master/api_python/{section}/{api}.html"


class OpInventoryError(PSPNetError, ValueError):
    """A graph holds a primitive that the allowlist does not name, or the allowlist is malformed."""


def load_allowlist(path: str | os.PathLike = ALLOWLIST) -> Dict[str, Dict]:
    """Primitive name -> entry (``api`` + ``ascend``, ``grad_of``, ``graph`` or ``multi_device``)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    ops = data.get("ops") if isinstance(data, dict) else None
    if not isinstance(ops, dict) or not ops:
        raise OpInventoryError(f"{path}: expected a mapping 'ops: {{Primitive: entry}}'")
    for name, entry in ops.items():
        kinds = [k for k in ("api", "grad_of", "graph") if k in (entry or {})]
        if len(kinds) != 1:
            raise OpInventoryError(f"{path}: op {name} needs exactly one of api / grad_of / graph, got {kinds}")
        if "api" in entry and "ascend" not in entry:
            raise OpInventoryError(f"{path}: op {name} names api {entry['api']} but not its 'ascend' statement")
        if "grad_of" in entry and entry["grad_of"] not in ops:
            raise OpInventoryError(f"{path}: op {name} is the gradient of {entry['grad_of']}, which is not listed")
    return ops


def docstring_platforms(api: str) -> Optional[str]:
    """The "Supported Platforms" line of ``api``'s docstring in the installed MindSpore (None if absent)."""
    module, _, name = api.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    match = re.search(r"Supported Platforms:\s*\n\s*(.+)", obj.__doc__ or "")
    return " ".join(match.group(1).replace("``", "").split()) if match else None


def docs_url(api: str) -> str:
    """The page of ``api`` in MindSpore's API docs."""
    section = "nn" if api.startswith("mindspore.nn.") else "ops"
    return DOCS_URL.format(section=section, api=api)


def graph_primitives(cell, inputs: Tuple, path: str | os.PathLike) -> Dict[str, int]:
    """Export ``cell`` on ``inputs`` to MINDIR at ``path`` and count its nodes by primitive."""
    import mindspore as ms

    from src.deploy.export import export_files, mindir_primitives

    target = str(path) if str(path).endswith(".mindir") else str(path) + ".mindir"
    export_files(lambda base: ms.export(cell, *inputs, file_name=base, file_format="MINDIR"), target)
    return mindir_primitives(target)


def compiled_primitives(cell, inputs: Tuple) -> Dict[str, int]:
    """Compile ``cell`` on ``inputs`` as export does and count the graph's nodes by primitive.

    Unlike ``ms.export`` this accepts a training step whose dynamic loss scaler holds Parameters outside a
    Cell; it uses the MindIR serializer's own compile step (a private MindSpore function, 2.10).
    """
    from mindspore.train.serialization import _cell_info

    from src.deploy.export import count_primitives

    stream, _ = _cell_info(cell, False, *inputs)
    return count_primitives(stream)


def ascend_graphs(model_cfg: ModelConfig, classes: int, hw: Tuple[int, int], batch: int = 2, amp_level: str = "O0",
                  loss_scale: str = "none", loss_scale_value: float = 1024.0) -> Dict[str, Dict[str, int]]:
    """``{"train": counts, "export": counts}`` for the training step and the exported network at ``hw``.

    The step is built as training builds it on Ascend: the fixed-size form, ``amp_level`` and the loss scale
    (``none`` / ``fixed`` / ``dynamic``).  SyncBatchNorm and the gradient all-reduce need a multi-device group
    and are not compiled here.
    """
    import mindspore as ms

    from src.model.pspnet import build_pspnet, training_input_hw
    from src.train.lr import build_optimizer
    from src.train.step import NetWithLoss, TrainStep, apply_amp, make_loss_scale

    static_hw = training_input_hw(model_cfg.graph_form, "Ascend", hw)
    net = build_pspnet(model_cfg, classes, for_training=True, static_hw=static_hw)
    net = apply_amp(net, amp_level)
    step = TrainStep(NetWithLoss(net), build_optimizer(net, 0.01, 10), 1, make_loss_scale(loss_scale, loss_scale_value))
    step.set_train(True)
    image = ms.Tensor(np.zeros((batch, 3, *hw), np.float32))
    label = ms.Tensor(np.zeros((batch, *hw), np.int32))
    eval_net = build_pspnet(model_cfg, classes, for_training=False, static_hw=hw)  # as export.py builds it
    eval_net.set_train(False)
    with tempfile.TemporaryDirectory() as tmp:
        return {"train": compiled_primitives(step, (image, label)),
                "export": graph_primitives(eval_net, (ms.Tensor(np.zeros((1, 3, *hw), np.float32)),),
                                           Path(tmp) / "export.mindir")}


AICORE_SUFFIXES = (b"AclnnKernelMod", b"Ascend")
_MANGLED = re.compile(rb"(\d{1,2})([A-Z][A-Za-z0-9]+)")


def _kernel_classes(data: bytes) -> set:
    """Primitive names of ``<Op>Ascend`` / ``<Op>AclnnKernelMod`` classes in a library's mangled symbols."""
    found = set()
    for m in _MANGLED.finditer(data):
        n = int(m.group(1))
        name = m.group(2)[:n]
        if len(name) != n:
            continue
        for suffix in AICORE_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                found.add(name[:-len(suffix)].decode())
    return found


def wheel_registrations(ms_root: Optional[str | os.PathLike] = None) -> Dict[str, set]:
    """Kernel registrations of the installed MindSpore: ``aicpu`` (AI CPU), ``akg_ascend`` and ``aclnn``
    (AI Core), each a set of primitive names, read from the wheel's files (nothing is imported)."""
    if ms_root is None:
        import mindspore

        ms_root = os.path.dirname(mindspore.__file__)
    root = Path(ms_root)
    impl = root / "ops" / "_op_impl"
    aicpu = {m for f in (impl / "aicpu").glob("*.py") for m in re.findall(r'AiCPURegOp\("(\w+)"\)', f.read_text())}
    akg = {m for f in (impl / "akg" / "ascend").glob("*.py") for m in re.findall(r'RegOp\("(\w+)"\)', f.read_text())}
    plugin = root / "lib" / "plugin"
    aclnn: set = set()
    for lib in [*plugin.glob("libmindspore_ops_ascend.so*"), *(plugin / "ascend").glob("*.so*")]:
        aclnn |= _kernel_classes(lib.read_bytes())
    if not aicpu or not aclnn:
        raise OpInventoryError(f"{root}: found no AI CPU registrations or no Ascend kernel classes; this check needs "
                               f"a MindSpore 2.x wheel with its Ascend plugin")
    return {"aicpu": aicpu, "akg_ascend": akg, "aclnn": aclnn}


def aicpu_only(ops: Iterable[str], registrations: Mapping[str, set]) -> List[str]:
    """The primitives of ``ops`` registered as AI CPU kernels with no AI Core (ACLNN / AKG) kernel in the wheel."""
    core = registrations["aclnn"] | registrations["akg_ascend"]
    return sorted(op for op in set(ops) if op in registrations["aicpu"] and op not in core)


CANN_LIST = Path(__file__).with_name("cann_aicore_ops.txt")


def load_cann_aicore(path: str | os.PathLike = CANN_LIST) -> set:
    """Operator types CANN's public sources define with an AI Core implementation (``cann_aicore_ops.txt``)."""
    return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")}


def cann_evidence(op: str, cann: set) -> Optional[str]:
    """The CANN operator type with an AI Core definition that ``op`` compiles to, if the public sources have
    one under its name or its usual CANN variants (``<Op>V2``, ``<Op>D``)."""
    return next((name for name in (op, f"{op}V2", f"{op}D") if name in cann), None)


def evidence_table(graphs: Mapping[str, Mapping[str, int]], registrations: Mapping[str, set], cann: set) -> List[str]:
    """Per primitive of the graphs, which evidence holds: the wheel's kernel registrations (what MindSpore
    itself ships) and CANN's public operator definitions (what the wheel cannot show). Markdown lines."""
    core = registrations["aclnn"] | registrations["akg_ascend"]
    lines = ["| primitive | the MindSpore wheel | CANN public op_host (ops-nn, ops-math) |", "|---|---|---|"]
    for op in sorted(set().union(*[set(g) for g in graphs.values()])):
        wheel = "AI Core (ACLNN / AKG)" if op in core else ("AI CPU only" if op in registrations["aicpu"]
                                                            else "no registration")
        found = cann_evidence(op, cann)
        what = "not in these sources" if not found else f"AI Core: {found}" + (" (a variant of the name)"
                                                                                 if found != op else "")
        lines.append(f"| {op} | {wheel} | {what} |")
    return lines


def check_aicore(graphs: Mapping[str, Mapping[str, int]], registrations: Mapping[str, set],
                 accepted: Mapping[str, str]) -> None:
    """Raise :class:`OpInventoryError` for any AI-CPU-only primitive in ``graphs`` that ``accepted`` does not name."""
    bad = {g: [op for op in aicpu_only(counts, registrations) if op not in accepted] for g, counts in graphs.items()}
    bad = {g: ops for g, ops in bad.items() if ops}
    if bad:
        what = "; ".join(f"{g} graph: {', '.join(ops)}" for g, ops in bad.items())
        raise OpInventoryError(f"primitives registered only as AI CPU kernels in the installed MindSpore: {what}. "
                               f"Replace them by ops with AI Core kernels, or accept each in the allowlist's "
                               f"aicpu_accepted with the reason")


def load_aicpu_accepted(path: str | os.PathLike = ALLOWLIST) -> Dict[str, str]:
    """The allowlist's ``aicpu_accepted``: primitive -> why it may stay although only AI CPU kernels are found."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    accepted = data.get("aicpu_accepted", {}) if isinstance(data, dict) else {}
    if not isinstance(accepted, dict) or not all(isinstance(v, str) and v for v in accepted.values()):
        raise OpInventoryError(f"{path}: aicpu_accepted must map each primitive to its reason")
    return accepted


def unlisted(graphs: Mapping[str, Mapping[str, int]], allowlist: Mapping[str, Dict]) -> Dict[str, List[str]]:
    """Per graph, the primitives that are not on the allowlist (empty when all are)."""
    return {g: sorted(op for op in counts if op not in allowlist) for g, counts in graphs.items()
            if any(op not in allowlist for op in counts)}


def statement(entry: Mapping, allowlist: Mapping[str, Dict]) -> str:
    """What the allowlist says of one primitive, with the doc page it cites."""
    if "graph" in entry:
        return f"graph node, not a kernel: {entry['graph']}"
    if "grad_of" in entry:
        return f"backward of {entry['grad_of']} ({statement(allowlist[entry['grad_of']], allowlist)})"
    return f"{entry['api']}: Supported Platforms {entry['ascend']} ({docs_url(entry['api'])})"


def report(graphs: Mapping[str, Mapping[str, int]], allowlist: Mapping[str, Dict]) -> List[str]:
    """A Markdown table: primitive, count per graph, and the allowlist's statement (or NOT LISTED)."""
    names = sorted(set().union(*[set(c) for c in graphs.values()]))
    head = "| primitive | " + " | ".join(graphs) + " | Ascend support (MindSpore docs) |"
    lines = [head, "|" + "---|" * (len(graphs) + 2)]
    for op in names:
        counts = " | ".join(str(graphs[g].get(op, "")) for g in graphs)
        said = statement(allowlist[op], allowlist) if op in allowlist else "NOT LISTED"
        lines.append(f"| {op} | {counts} | {said} |")
    return lines


def check_graphs(graphs: Mapping[str, Mapping[str, int]], allowlist: Mapping[str, Dict],
                 source: str = str(ALLOWLIST)) -> None:
    """Raise :class:`OpInventoryError` naming every primitive (per graph) that ``allowlist`` lacks."""
    missing = unlisted(graphs, allowlist)
    if missing:
        what = "; ".join(f"{g} graph: {', '.join(ops)}" for g, ops in missing.items())
        raise OpInventoryError(f"primitives not on the allowlist {source}: {what}. Check each one's Ascend support "
                               f"in the MindSpore docs and add it with its statement, or change the network")
