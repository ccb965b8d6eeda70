"""What our plugin adds to TensorBoard's start: import time and memory, against bare TensorBoard.

TensorBoard imports every installed plugin entry point at start, so every TensorBoard user with
attnflows installed pays for whatever `attnflows_tb.plugin` imports. Each measurement is a fresh
interpreter that imports `tensorboard.program` (the baseline) or `tensorboard.program` and then
our entry point `attnflows_tb.plugin:AttentionFlowsLoader` (what `tensorboard --logdir` does),
alternated A/B/A/B; the figures are medians of the import time (in-process, interpreter start
excluded) and of the process's peak RSS.

Goals (issue 12): at most +0.6 s and +80 MiB over bare `tensorboard.program`, torch and
transformers not loaded, `sys.excepthook` untouched. The plugin loads hdf5plugin (the HDF5
filters of the default `zstd-u8` shards) only when it first reads such a shard; a third
variant measures that too (plugin + hdf5plugin and its libzstd, as the first read loads them).

Run: python benchmarks/bench_import.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, Figure, median, report  # noqa: E402

TIME_GOAL_S = 0.6
RSS_GOAL_MIB = 80.0

PROBE = """
import json, resource, sys, time
hook = sys.excepthook
start = time.perf_counter()
import tensorboard.program
if {plugin}:
    from attnflows_tb.plugin import AttentionFlowsLoader
if {filters}:
    from attnflows_callback.encodings import _zstd_library
    _zstd_library()
seconds = time.perf_counter() - start
print(json.dumps({{
    "seconds": seconds,
    "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "loaded": sorted(m for m in ("torch", "transformers", "lightning") if m in sys.modules),
    "excepthook_untouched": sys.excepthook is hook,
}}))
"""


def measure(plugin: bool, filters: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", PROBE.format(plugin=plugin, filters=filters)], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    measure(False), measure(True)  # warm the file cache for both
    bare, ours, filtered = [], [], []
    for _ in range(args.repeats):
        bare.append(measure(False))
        ours.append(measure(True))
        filtered.append(measure(True, filters=True))
    loaded = sorted({m for run in ours for m in run["loaded"]})
    untouched = all(run["excepthook_untouched"] for run in ours)
    facts = (f"torch/transformers loaded: {', '.join(loaded) if loaded else 'neither'}; "
             f"sys.excepthook untouched: {'yes' if untouched else 'no'}; median of {args.repeats} fresh processes each")
    clean = not loaded and untouched
    t_bare, t_ours = median([r["seconds"] for r in bare]), median([r["seconds"] for r in ours])
    m_bare, m_ours = median([r["rss_mib"] for r in bare]), median([r["rss_mib"] for r in ours])
    t_filt, m_filt = median([r["seconds"] for r in filtered]), median([r["rss_mib"] for r in filtered])
    clean_filt = clean and not any(run["loaded"] for run in filtered)
    report([
        Figure("import", "import time, tensorboard.program + attnflows plugin", t_ours, "s", t_bare,
               "bare tensorboard.program", f"<= +{TIME_GOAL_S} s, no torch", clean and t_ours - t_bare <= TIME_GOAL_S,
               f"+{t_ours - t_bare:.2f} s; {facts}"),
        Figure("import", "peak RSS, tensorboard.program + attnflows plugin", m_ours, "MiB", m_bare,
               "bare tensorboard.program", f"<= +{RSS_GOAL_MIB:.0f} MiB, no torch",
               clean and m_ours - m_bare <= RSS_GOAL_MIB, f"+{m_ours - m_bare:.0f} MiB; {facts}"),
        Figure("import", "import time, ... + hdf5plugin and libzstd (first zstd-u8 shard read)", t_filt, "s", t_bare,
               "bare tensorboard.program", f"<= +{TIME_GOAL_S} s, no torch",
               clean_filt and t_filt - t_bare <= TIME_GOAL_S, f"+{t_filt - t_bare:.2f} s, +{t_filt - t_ours:.2f} s over the plugin alone"),
        Figure("import", "peak RSS, ... + hdf5plugin and libzstd (first zstd-u8 shard read)", m_filt, "MiB", m_bare,
               "bare tensorboard.program", f"<= +{RSS_GOAL_MIB:.0f} MiB, no torch",
               clean_filt and m_filt - m_bare <= RSS_GOAL_MIB,
               f"+{m_filt - m_bare:.0f} MiB, +{m_filt - m_ours:.0f} MiB over the plugin alone"),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
