"""attnflows: follow a transformer's attention along its fine-tuning timeline.

Record with :class:`AttentionRecorder` (or the Lightning / Hugging Face callbacks in
:mod:`attnflows_callback.lightning` and :mod:`attnflows_callback.hf`), read back with
:func:`open_run`, analyse with :mod:`attnflows_callback.analysis`.

The names below load lazily (PEP 562): TensorBoard imports this package through our plugin at
start, so ``from attnflows_callback import open_run`` must not pull in torch with the recorder.

Example (in a fresh interpreter, the read side loads without torch):
    >>> import subprocess, sys
    >>> code = "from attnflows_callback import open_run; import sys; print('torch' in sys.modules)"
    >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    'False'
"""

from __future__ import annotations

from ._lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> the submodule that defines it
_LAZY = {
    "AttentionCaptureError": "capture",
    "capture_probe": "capture",
    "ProbeSet": "probe",
    "TokenizedProbe": "probe",
    "NotARunError": "reader",
    "Problem": "reader",
    "Run": "reader",
    "open_run": "reader",
    "AttentionRecorder": "recorder",
    "ENCODINGS": "store",
    "FORMAT_VERSION": "schema",
    "RunExistsError": "store",
}

__all__ = sorted([*_LAZY, "__version__"])


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
