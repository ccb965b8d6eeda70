"""Display options: the view transform a route applies to attention before it computes what a view draws.

The tab hides attention *parked* on special tokens and punctuation (Clark et al. 2019) as a view,
never in the stored data: :func:`attnflows_callback.analysis.view.apply_view` drops those targets,
renormalises each row over what remains and (with ``units=words``) merges word pieces into words.
The routes ``/flow``, ``/compare`` and ``/attention`` take the two options as query parameters:

- ``targets``: which targets to hide, one of :data:`TARGETS` (absent: ``none``, raw attention);
- ``units``: ``tokens`` or ``words`` (:data:`UNITS`; absent: ``tokens``).

The tab's defaults come from :func:`run_default` (served per run in ``/runs`` as ``view_default``):
:data:`~attnflows_callback.analysis.view.VIEW_DEFAULTS` for a model whose inputs hold special
tokens, raw attention otherwise. They were chosen by measurement (docs/frontend.md, "Readable views").

Example:
    >>> import numpy as np
    >>> shown = transform(np.full((1, 1, 3, 3), 1 / 3), ["[CLS]", "good", "[SEP]"], None,
    ...                   Display("special", "tokens"))
    >>> shown.attention[0, 0, 1].tolist(), shown.info["keep"]
    ([0.0, 1.0, 0.0], [False, True, False])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from attnflows_callback.analysis import view as analysis_view

from . import params
from .errors import BadRequest

_TARGET_LABELS = {"none": "keep every target (raw attention)", "special": "hide special tokens",
                  "special_punct": "hide special tokens and punctuation"}
TARGETS = {name: (_TARGET_LABELS[name], *drops) for name, drops in analysis_view.TARGET_SETS.items()}
"""``targets`` value -> (menu label, drop special tokens, drop punctuation)."""

UNITS = {"tokens": "word pieces", "words": "words"}
"""``units`` value -> menu label."""

EDGE_COLOURS = {"head": "colour edges by head", "layer": "colour edges by layer"}
"""How the per-head graph colours its edges (a browser-side choice, validated against this list)."""


@dataclass(frozen=True)
class Display:
    """The two display options of a request: which targets are hidden, and which units are shown."""

    targets: str = "none"
    units: str = "tokens"

    @property
    def raw(self) -> bool:
        """True when the request shows stored attention as it is."""
        return self.targets == "none" and self.units == "tokens"


@dataclass(frozen=True)
class Shown:
    """Attention as the display shows it: ``attention [..., U, U]``, the ``labels`` of its units, the
    token ``units`` (positions per unit), and ``info`` (None for raw attention) for the response."""

    attention: np.ndarray
    labels: list[str]
    units: list[np.ndarray]
    info: dict | None

    def unit_of(self, position: int) -> int:
        """The unit that holds token ``position`` (the identity for token units)."""
        for index, unit in enumerate(self.units):
            if position in unit:
                return index
        raise ValueError(f"position {position} is in no unit")


def parse(args: Mapping) -> Display:
    """The ``targets`` and ``units`` query parameters (absent: raw attention), or a 400 listing the choices.

    Example:
        >>> parse({"targets": "special_punct", "units": "words"})
        Display(targets='special_punct', units='words')
        >>> parse({}).raw
        True
    """
    targets = params.text(args, "targets") or "none"
    units = params.text(args, "units") or "tokens"
    if targets not in TARGETS:
        raise BadRequest(f"parameter 'targets' must be one of {list(TARGETS)}")
    if units not in UNITS:
        raise BadRequest(f"parameter 'units' must be one of {list(UNITS)}")
    return Display(targets, units)


def run_default(tokens: Sequence[str], word_ids: Sequence[int | None] | None) -> dict:
    """The display a run opens with: the measured defaults when its inputs hold special tokens, else raw.

    Example:
        >>> run_default(["[CLS]", "fine", "[SEP]"], [None, 0, None])
        {'targets': 'special_punct', 'units': 'words'}
        >>> run_default(["fine", "day"], None)
        {'targets': 'none', 'units': 'tokens'}
    """
    units = "words" if analysis_view.VIEW_DEFAULTS["words"] and word_ids is not None else "tokens"
    return {"targets": analysis_view.view_targets(tokens, word_ids), "units": units}


def served() -> dict:
    """What ``/registries`` says about the display options, for the browser's menus and URL checks."""
    return {"targets": [[name, label] for name, (label, _, _) in TARGETS.items()],
            "units": [[name, label] for name, label in UNITS.items()],
            "edge_colours": [[name, label] for name, label in EDGE_COLOURS.items()]}


def transform(attention: np.ndarray, tokens: Sequence[str], word_ids: Sequence[int | None] | None,
              display: Display) -> Shown:
    """``attention [..., T, T]`` as ``display`` shows it (the stored array is not changed).

    ``info`` says what was done, for the legend: the options, each unit's role and whether it is
    kept as a target, ``hidden_mass``, the mean share of raw attention the view hides, and
    ``unit_positions``, the token positions each shown unit holds.
    ``units=words`` without word ids keeps token units (``info["units"]`` says so).
    """
    tokens = [str(token) for token in tokens]
    if display.raw:
        return Shown(attention, tokens, [np.array([i]) for i in range(len(tokens))], None)
    _, drop_special, drop_punctuation = TARGETS[display.targets]
    words = display.units == "words" and word_ids is not None
    shown = analysis_view.apply_view(attention, tokens, word_ids, drop_special=drop_special,
                                     drop_punctuation=drop_punctuation, words=words)
    return Shown(shown.attention, list(shown.labels), list(shown.units),
                 _info(display, words, shown.roles, shown.keep, float(np.mean(shown.hidden_mass)), shown.units))


def transform_mean(mean: np.ndarray, hidden: float, tokens: Sequence[str], word_ids: Sequence[int | None] | None,
                   display: Display, *, merged: bool = False) -> Shown:
    """The head mean ``[L, 1, U, U]`` as ``display`` shows it, from a stored head mean ``[L, T, T]`` whose hidden
    targets are already ``display.targets`` (:meth:`attnflows_callback.reader.Run.head_mean`), and the share it hid.
    ``merged``: the stored mean is over words already (``[L, W, W]``); a ValueError unless W is the input's.

    Equal to the head mean of :func:`transform` (word pieces merge linearly), without the per-head work;
    float32 like the stored mean (half the bytes of a kept float64 one; the analysis reads either).

    Example:
        >>> import numpy as np
        >>> shown = transform_mean(np.full((1, 3, 3), 1 / 3), 0.0, ["[CLS]", "good", "##ish"], [None, 0, 0],
        ...                        Display("none", "words"))
        >>> shown.labels, [round(float(w), 3) for w in shown.attention[0, 0, 0]]
        (['[CLS]', 'goodish'], [0.333, 0.667])
    """
    tokens = [str(token) for token in tokens]
    stacked = np.asarray(mean, dtype=np.float32)[:, None]
    if display.raw:
        return Shown(stacked, tokens, [np.array([i]) for i in range(len(tokens))], None)
    words = display.units == "words" and word_ids is not None
    roles = analysis_view.token_roles(tokens, word_ids)
    keep = analysis_view.view_keep(tokens, word_ids, display.targets)
    if not words:
        units = [np.array([i]) for i in range(len(tokens))]
        return Shown(stacked, tokens, units, _info(display, False, roles, keep, hidden, units))
    from attnflows_callback.analysis import merge_word_pieces, word_units

    units = word_units(list(word_ids))
    if merged and stacked.shape[-1] != len(units):
        raise ValueError(f"a stored head mean over {stacked.shape[-1]} words; the input has {len(units)}")
    kept_units = np.array([bool(keep[unit].any()) for unit in units])
    shown = stacked if merged else merge_word_pieces(stacked, word_ids)
    return Shown(shown, analysis_view.unit_labels(tokens, units), units,
                 _info(display, True, [roles[int(u[0])] for u in units], kept_units, hidden, units))


def _info(display: Display, words: bool, roles, keep, hidden_mass: float, units) -> dict:
    """What a shown view says it did, for the legend (:func:`transform`)."""
    return {"targets": display.targets, "units": "words" if words else "tokens",
            "roles": list(roles), "keep": [bool(k) for k in keep],
            "hidden_mass": round(float(hidden_mass), 6),
            "unit_positions": [[int(i) for i in unit] for unit in units]}  # tokens per unit: segments map through it
