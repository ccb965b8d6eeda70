"""The read side (open_run, analysis, the TensorBoard plugin) loads without the write side.

TensorBoard imports every installed plugin at start, so whatever the plugin imports, every
TensorBoard user pays: these facts are checked in a fresh interpreter, where nothing else
has loaded torch yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

READ_SIDE = """
import atexit, json, sys
import h5py  # h5py registers its own two exit callbacks; only ours are counted
hook, callbacks = sys.excepthook, atexit._ncallbacks()
import attnflows_tb.plugin
from attnflows_callback import open_run, analysis, ENCODINGS
import attnflows_callback.reader
print(json.dumps({
    "heavy": sorted(m for m in ("torch", "transformers", "lightning", "attnflows_callback.recorder",
                                "attnflows_callback.capture") if m in sys.modules),
    "excepthook_unchanged": sys.excepthook is hook,
    "atexit_added": atexit._ncallbacks() - callbacks,
}))
"""

TENSORBOARD_START = """
import json, sys
import attnflows_tb.plugin  # what TensorBoard imports at start, attnflows runs or not
print(json.dumps(sorted(m for m in ("scipy", "hdf5plugin", "torch") if m in sys.modules)))
"""

WRITE_SIDE_IMPORT = """
import json, sys
hook = sys.excepthook
import attnflows_callback
from attnflows_callback import AttentionRecorder
from attnflows_callback.recorder import AttentionRecorder as defined
print(json.dumps({
    "same_class": AttentionRecorder is defined,
    "listed": sorted(n for n in attnflows_callback.__all__ if n not in dir(attnflows_callback)),
    "excepthook_unchanged": sys.excepthook is hook,
    "exit_hooks_installed": attnflows_callback.exit_hooks._previous_excepthook is not None,
}))
"""


def facts(script: str) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plugin_open_run_and_analysis_import_no_torch_no_transformers_and_no_exit_hooks():
    assert facts(READ_SIDE) == {"heavy": [], "excepthook_unchanged": True, "atexit_added": 0}


def test_tensorboard_start_loads_no_scipy_and_no_hdf5plugin_until_they_are_needed():
    assert facts(TENSORBOARD_START) == []


def test_recorder_still_imports_from_the_package_and_installs_no_hook_until_one_is_created():
    assert facts(WRITE_SIDE_IMPORT) == {"same_class": True, "listed": [], "excepthook_unchanged": True,
                                        "exit_hooks_installed": False}


def test_an_unknown_package_attribute_is_an_attribute_error_that_names_it():
    import attnflows_callback
    import pytest

    with pytest.raises(AttributeError, match="no_such_name"):
        attnflows_callback.no_such_name  # noqa: B018
