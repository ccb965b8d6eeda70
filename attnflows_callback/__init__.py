"""attnflows: follow a transformer's attention along its fine-tuning timeline.

Record with :class:`AttentionRecorder` (or the Lightning / Hugging Face callbacks in
:mod:`attnflows_callback.lightning` and :mod:`attnflows_callback.hf`), read back with
:func:`open_run`, analyse with :mod:`attnflows_callback.analysis`.
"""

__version__ = "0.1.0"

from .capture import AttentionCaptureError, capture_probe  # noqa: E402
from .probe import ProbeSet, TokenizedProbe  # noqa: E402
from .reader import NotARunError, Problem, Run, open_run  # noqa: E402
from .recorder import AttentionRecorder  # noqa: E402
from .store import ENCODINGS, FORMAT_VERSION, RunExistsError  # noqa: E402

__all__ = [
    "AttentionCaptureError",
    "AttentionRecorder",
    "ENCODINGS",
    "FORMAT_VERSION",
    "NotARunError",
    "Problem",
    "ProbeSet",
    "Run",
    "RunExistsError",
    "TokenizedProbe",
    "__version__",
    "capture_probe",
    "open_run",
]
