"""TensorBoard scalars and hparams beside the snapshots, so they show up next to the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALAR_PREFIX = "attnflows"


class TensorBoardLog:
    """Writes attnflows scalars and the run's hyperparameters into the TensorBoard run directory.

    Example:
        >>> import tempfile
        >>> log = TensorBoardLog(tempfile.mkdtemp())
        >>> log.scalars(0, {"probe_accuracy": 0.5})
        >>> log.close()
    """

    def __init__(self, run_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(run_dir), filename_suffix=".attnflows-scalars", flush_secs=10)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            if value is not None and np.isfinite(value):
                self._writer.add_scalar(f"{SCALAR_PREFIX}/{name}", float(value), global_step=int(step))
        self._writer.flush()

    def hparams(self, hparams: dict, metrics: dict[str, float] | None = None) -> None:
        """Log to the HParams dashboard in this run (not in a new sub-run, as ``add_hparams`` would)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        clean = {k: _hparam_value(v) for k, v in hparams.items()}
        metrics = metrics or {f"{SCALAR_PREFIX}/probe_accuracy": float("nan")}
        experiment, session_start, session_end = hparams_summary(clean, metrics)
        writer = self._writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            writer.add_summary(summary)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _hparam_value(value):
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def layer_scalars(summaries: dict[str, dict[str, np.ndarray]], accuracy: float | None) -> dict[str, float]:
    """Per-layer change from the pre-trained snapshot (mean JS over examples and heads) and probe accuracy."""
    values: dict[str, float] = {}
    for stream, metrics in summaries.items():
        js = metrics.get("js_from_start")
        if js is None:
            continue
        prefix = "change" if stream == "self" else f"change_{stream}"
        for layer, value in enumerate(np.nanmean(js, axis=(0, 2))):
            values[f"{prefix}/layer_{layer:02d}"] = float(value)
    if accuracy is not None:
        values["probe_accuracy"] = float(accuracy)
    return values
