"""Parsing the label arguments of the analysis commands against a run's label names.

Every error is a :class:`~pyro_ccvae.errors.UserError` with a one-line message naming the run's labels.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..errors import UserError


def _lookup(name: str, label_names: Sequence[str]) -> int:
    if name not in label_names:
        raise UserError(f"unknown label {name!r}; this run's labels are: {', '.join(label_names)}")
    return list(label_names).index(name)


def parse_label_list(spec: Optional[str], label_names: Sequence[str]) -> list[int]:
    """``"A,B"`` -> the labels' column indices; ``None`` or empty means every label."""
    if spec is None or not spec.strip():
        return list(range(len(label_names)))
    names = [part.strip() for part in spec.split(",")]
    if any(not name for name in names):
        raise UserError(f"bad --labels {spec!r}: expected comma-separated label names, e.g. {label_names[0]},...")
    index = [_lookup(name, label_names) for name in names]
    if len(set(index)) != len(index):
        raise UserError(f"bad --labels {spec!r}: a label is named twice")
    return index


def parse_pairs(spec: Optional[str], label_names: Sequence[str]) -> list[tuple[int, int]]:
    """``"A:B,C:D"`` -> pairs of column indices. ``None`` gives the first two labels (if there are
    two); an empty string gives no pairs."""
    if spec is None:
        return [(0, 1)] if len(label_names) >= 2 else []
    pairs = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        names = [n.strip() for n in part.split(":")]
        if len(names) != 2 or not all(names):
            raise UserError(f"bad --pairs entry {part!r}: expected NAME:NAME, e.g. {':'.join(label_names[:2])}")
        a, b = (_lookup(n, label_names) for n in names)
        if a == b:
            raise UserError(f"bad --pairs entry {part!r}: a pair needs two different labels")
        pairs.append((a, b))
    return pairs


def parse_label_vectors(
    specs: Sequence[str], label_names: Sequence[str], num_classes: Optional[Sequence[int]] = None
) -> list[dict[int, int]]:
    """Label vectors for conditional generation: each spec holds one or more ``;``-separated
    vectors ``NAME=CLASS,NAME=CLASS,...`` (a class index ``0..K_i-1``: ``0|1`` for a binary
    label); returns one ``{column: class}`` per vector.

    A label a vector leaves out is drawn from ``p(y)``; an empty vector (``""``) leaves out all.

    :param num_classes: classes per label (default: 2 each, every label binary).
    """
    num_classes = list(num_classes) if num_classes is not None else [2] * len(label_names)
    vectors = []
    for spec in specs:
        for vector in spec.split(";"):
            fixed: dict[int, int] = {}
            for item in (i.strip() for i in vector.split(",")):
                if not item:
                    continue
                name, sep, value = (s.strip() for s in item.partition("="))
                if not sep:
                    raise UserError(f"bad label setting {item!r}: expected NAME=CLASS, a class index (NAME=0 or NAME=1 for a binary label)")
                column = _lookup(name, label_names)
                fixed_class = _class_index(item, name, value, num_classes[column])
                if column in fixed:
                    raise UserError(f"label {name!r} is set twice in {vector.strip()!r}")
                fixed[column] = fixed_class
            vectors.append(fixed)
    return vectors


def _class_index(item: str, name: str, value: str, num_classes: int) -> int:
    """The class index ``value`` of label ``name`` (``num_classes`` classes), or a one-line error."""
    if value.isdigit() and int(value) < num_classes:
        return int(value)
    if num_classes == 2:
        raise UserError(f"bad label setting {item!r}: expected NAME=0 or NAME=1 ({name!r} is binary)")
    raise UserError(f"bad label setting {item!r}: label {name!r} has the classes 0..{num_classes - 1}")


def describe_vector(fixed: dict[int, int], label_names: Sequence[str]) -> str:
    """``{0: 1, 2: 0}`` -> ``"A=1,C=0"`` (``"p(y)"`` when nothing is fixed)."""
    return ",".join(f"{label_names[i]}={v}" for i, v in sorted(fixed.items())) or "p(y)"
