"""Attention health during training: special-token mass per layer and heads whose entropy collapsed
or spread out since step 0, as TensorBoard scalars and (opt-in) warnings in the training log.

Computed on the recorder's writer thread from what it already has: the per-example head entropy
of :func:`~attnflows_callback.recorder.snapshot_summaries`, the captured attention (for the mass
on special tokens) and the step-0 reference snapshot. The training thread pays nothing.

Measures (see docs/analysis.md, "Attention health"):

- ``special_mass[l]``: mean over examples, heads and query rows of the attention on special
  tokens (those the tokenizer added: [CLS], [SEP], ...);
- normalised entropy ``e[l, h] = mean_i H_i[l, h] / ln Tk_i`` over examples with at least two
  keys: 0 for one-hot rows, 1 for uniform rows (:func:`normalised_entropy`);
- a head *collapsed* when ``e <= collapsed`` now and ``e > collapsed`` at step 0; it *spread out*
  when ``e >= spread`` now and ``e < spread`` at step 0 (:data:`HEALTH_THRESHOLDS`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

HEALTH_THRESHOLDS = {"collapsed": 0.15, "spread": 0.9, "special_rise": 0.2}
"""Normalised entropy at or below ``collapsed`` is near one-hot, at or above ``spread`` near uniform;
a layer's special-token mass rising by ``special_rise`` or more since step 0 is warned about."""

HEALTH_STREAMS = ("self", "encoder", "cross")
"""Streams whose keys are the probe's tokens, so special-token mass is defined for them."""

logger = logging.getLogger("attnflows_callback.health")


def normalised_entropy(entropy, key_counts) -> np.ndarray:
    """Mean over examples of each head's entropy divided by its ceiling ``ln Tk``: ``[L, H]`` in [0, 1].

    ``e[l, h] = mean_{i: Tk_i >= 2} H_i[l, h] / ln Tk_i``; NaN where no example has two keys.

    Args:
        entropy: ``[N, L, H]`` head entropy per example, in nats (the ``entropy`` summary).
        key_counts: ``[N]`` key tokens per example.

    Example:
        >>> import numpy as np
        >>> normalised_entropy(np.log([[[4.0, 1.0]], [[2.0, 2.0]]]), [4, 2]).round(3).tolist()
        [[1.0, 0.5]]
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    counts = np.asarray(key_counts, dtype=np.float64)
    if entropy.ndim != 3 or counts.shape != (entropy.shape[0],):
        raise ValueError(f"entropy must be [examples, layers, heads] with one key count per example, "
                         f"got shapes {entropy.shape} and {counts.shape}")
    usable = counts >= 2
    if not usable.any():
        return np.full(entropy.shape[1:], np.nan)
    return (entropy[usable] / np.log(counts[usable])[:, None, None]).mean(axis=0)


def special_mass(attention: Sequence[np.ndarray], special: Sequence[np.ndarray]) -> np.ndarray:
    """Mean attention on special tokens per layer: ``mean_{i, h, q} sum_{k special} A_i[l, h, q, k]``, ``[L]``.

    Args:
        attention: ``N`` arrays ``[L, H, Tq_i, Tk_i]``.
        special: ``N`` bool masks ``[Tk_i]``.

    Example:
        >>> import numpy as np
        >>> special_mass([np.full((1, 1, 2, 4), 0.25)], [np.array([True, False, False, True])]).tolist()
        [0.5]
    """
    if len(attention) != len(special) or not attention:
        raise ValueError(
            f"attention and special must hold one entry per example, got {len(attention)} and {len(special)}"
        )
    per_example = []
    for weights, mask in zip(attention, special):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (weights.shape[-1],):
            raise ValueError(f"special masks must hold one flag per key token ({weights.shape[-1]}), got {mask.shape}")
        per_example.append(weights[..., mask].sum(axis=-1).mean(axis=(1, 2)))
    return np.mean(per_example, axis=0)


def special_masks(tokens: Sequence[Sequence[str]], word_ids: Sequence[Sequence[int]] | None) -> list[np.ndarray]:
    """Per example, which tokens are special (word id ``None``/negative, or a known special string)."""
    from .analysis.view import token_roles

    masks = []
    for k, row in enumerate(tokens):
        masks.append(np.asarray(token_roles(row, None if word_ids is None else word_ids[k])) == "special")
    return masks


def crossed(now, start, thresholds: dict | None = None) -> dict[str, np.ndarray]:
    """Heads that crossed a threshold since step 0: ``{"collapsed": [L, H] bool, "spread": [L, H] bool}``.

    Example:
        >>> flags = crossed([[0.1, 0.95, 0.5]], [[0.6, 0.5, 0.5]])
        >>> flags["collapsed"].tolist(), flags["spread"].tolist()
        ([[True, False, False]], [[False, True, False]])
    """
    limits = {**HEALTH_THRESHOLDS, **(thresholds or {})}
    now, start = np.asarray(now, dtype=np.float64), np.asarray(start, dtype=np.float64)
    if now.ndim != 2 or now.shape != start.shape:
        raise ValueError(f"now and start must be [layers, heads] of the same shape, got {now.shape} and {start.shape}")
    with np.errstate(invalid="ignore"):
        return {
            "collapsed": (now <= limits["collapsed"]) & (start > limits["collapsed"]),
            "spread": (now >= limits["spread"]) & (start < limits["spread"]),
        }


class AttentionHealth:
    """Per-snapshot health scalars for the recorder's writer thread, and warnings when asked for.

    Args:
        special: per probe example, a bool mask of its special tokens (:func:`special_masks`).
        warn: log a warning (logger ``attnflows_callback.health``) the first time a head collapses
            or spreads out, or a layer's special-token mass rises by ``special_rise``.
        thresholds: overrides of :data:`HEALTH_THRESHOLDS`.

    Example:
        >>> import numpy as np
        >>> health = AttentionHealth([np.array([True, False, False, True])])
        >>> start = {"self": [np.full((1, 1, 4, 4), 0.25)]}
        >>> sharp = np.zeros((1, 1, 4, 4)); sharp[..., 1] = 1.0
        >>> scalars = health.observe(10, {"self": [sharp]}, {"self": {"entropy": np.zeros((1, 1, 1))}}, start)
        >>> scalars["health/collapsed_heads/layer_00"], scalars["health/special_mass/layer_00"]
        (1.0, 0.0)
    """

    def __init__(self, special: Sequence[np.ndarray], *, warn: bool = False, thresholds: dict | None = None):
        if not isinstance(warn, bool):
            raise TypeError(f"health_warnings must be True or False, got {warn!r}")
        unknown = sorted(set(thresholds or {}) - set(HEALTH_THRESHOLDS))
        if unknown:
            raise ValueError(f"thresholds may set {sorted(HEALTH_THRESHOLDS)}, got {unknown}")
        self.special = [np.asarray(mask, dtype=bool) for mask in special]
        self.warn = bool(warn)
        self.thresholds = {**HEALTH_THRESHOLDS, **(thresholds or {})}
        self._start: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self._warned: set[tuple] = set()

    def observe(self, step: int, attention: dict[str, list[np.ndarray]], summaries: dict[str, dict],
                reference: dict[str, list[np.ndarray]] | None) -> dict[str, float]:
        """Scalars for this snapshot (names under ``health/``); warns when ``warn`` and a threshold is crossed.

        A failure here is logged and yields no scalars: health is a diagnostic, it must never stop
        the recording (the writer thread stops recording on any exception).
        """
        try:
            return self._observe(step, attention, summaries, reference)
        except Exception as err:  # noqa: BLE001 - see above
            logger.warning("attnflows health: no health scalars at step %d (%s: %s)", step, type(err).__name__, err)
            return {}

    def _observe(self, step, attention, summaries, reference) -> dict[str, float]:
        scalars: dict[str, float] = {}
        for stream, per_example in attention.items():
            entropy = summaries.get(stream, {}).get("entropy")
            if entropy is None:
                continue
            prefix = "health" if stream == "self" else f"health_{stream}"
            keys = [weights.shape[-1] for weights in per_example]
            now = normalised_entropy(entropy, keys)
            has_special = stream in HEALTH_STREAMS and len(self.special) == len(per_example) and all(
                mask.shape == (k,) for mask, k in zip(self.special, keys))
            special_now = special_mass(per_example, self.special) if has_special else None
            start = self._baseline(stream, reference, has_special)
            if special_now is not None:
                for layer, value in enumerate(special_now):
                    scalars[f"{prefix}/special_mass/layer_{layer:02d}"] = float(value)
            if start is None:
                continue
            start_entropy, special_start = start
            flags = crossed(now, start_entropy, self.thresholds)
            for kind, mask in flags.items():
                for layer, count in enumerate(mask.sum(axis=1)):
                    scalars[f"{prefix}/{kind}_heads/layer_{layer:02d}"] = float(count)
            if self.warn:
                self._warn(step, stream, now, start_entropy, flags, special_now, special_start)
        return scalars

    def _baseline(self, stream: str, reference, has_special: bool):
        if stream not in self._start:
            if not reference or stream not in reference:
                return None
            from .analysis import head_entropy

            ref = reference[stream]
            entropy = np.stack([head_entropy(weights) for weights in ref])
            self._start[stream] = (
                normalised_entropy(entropy, [weights.shape[-1] for weights in ref]),
                special_mass(ref, self.special) if has_special else None,
            )
        return self._start[stream]

    def _warn(self, step, stream, now, start, flags, special_now, special_start) -> None:
        where = "" if stream == "self" else f" ({stream} attention)"
        meaning = {"collapsed": "attends to almost one token", "spread": "attends almost uniformly"}
        for kind, mask in flags.items():
            for layer, head in zip(*np.nonzero(mask)):
                key = (stream, kind, int(layer), int(head))
                if key in self._warned:
                    continue
                self._warned.add(key)
                logger.warning(
                    "attnflows health at step %d%s: layer %d head %d %s since step 0 (normalised entropy %.2f -> "
                    "%.2f; threshold %.2f): it %s", step, where, layer, head,
                    "collapsed" if kind == "collapsed" else "spread out", start[layer, head], now[layer, head],
                    self.thresholds[kind], meaning[kind])
        if special_now is None or special_start is None:
            return
        for layer in np.flatnonzero(special_now - special_start >= self.thresholds["special_rise"]):
            key = (stream, "special", int(layer))
            if key not in self._warned:
                self._warned.add(key)
                logger.warning(
                    "attnflows health at step %d%s: layer %d puts %.2f of its attention on special tokens, up from "
                    "%.2f at step 0 (threshold +%.2f): its heads are parking attention as a no-op",
                    step, where, layer, special_now[layer], special_start[layer], self.thresholds["special_rise"])
