"""What analysis adds to the run directory's contract (:mod:`pyro_ccvae.run_directory` owns the files):
when a judge is reliable, and figure names.

Every analysis command writes into the run directory it reads::

    RUN/figures/*.png   figures
    RUN/metrics.json    one section per metric family, merged across commands
    RUN/report.html     every metric and figure on one page (see :mod:`.report`)

Sections are replaced, never appended to, so a re-run of a command leaves one current answer.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

#: a judge reading a label's real test images less accurately than this makes that label's judged
#: metrics unreliable: they measure the judge as much as the model.
RELIABLE_JUDGE_ACCURACY = 0.9


def slug(name: str) -> str:
    """A label name made safe for a file name (``"Pleural Effusion"`` -> ``"Pleural_Effusion"``)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


#: longest label part of a figure name before it is shortened with a hash.
NAME_PARTS_MAX = 60


def figure_name(kind: str, parts: Sequence[str] = ()) -> str:
    """``kind`` followed by the requested labels (``"generate_red_1_large_0"``), so that a command
    asked for other labels writes another file instead of overwriting; a long tail is cut and
    ended with a hash of the whole (still one name per request)."""
    if not parts:
        return kind
    tail = slug("__".join(parts))
    if len(tail) > NAME_PARTS_MAX:
        tail = tail[: NAME_PARTS_MAX - 9] + "_" + hashlib.sha1(tail.encode()).hexdigest()[:8]
    return f"{kind}_{tail}"
