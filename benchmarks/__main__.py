"""Run every benchmark and write docs/benchmarks.md.

    python -m benchmarks                 # all of them, on CPU (about 10 to 15 minutes on 2 cores, plus
                                         # bench_big_model.py: 15 to 40 minutes and 8 GiB of memory)
    python -m benchmarks --only storage  # the scripts whose name contains "storage"
    python -m benchmarks --no-write      # print only
    python -m benchmarks --only flow --update  # re-run one script, replace its section only

Each script runs in its own process (so one benchmark's threads, caches and imports cannot
colour another's), prints its figures as `FIGURE {json}` lines, and is also runnable alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from ._common import FIGURE_PREFIX, ROOT, Figure, machine

# (script, what it measures, timeout in seconds)
SCRIPTS = [
    ("bench_storage.py", "Storage: bytes per attention weight and max error, per encoding", 300),
    ("bench_compression.py", "Compression: standard HDF5 filters (hdf5plugin) vs compact, at 14, 49 and 128 tokens", 900),
    ("bench_snapshot.py", "Snapshot cost on the training thread vs the bare probe forward pass", 300),
    ("bench_training_overhead.py", "Training overhead: real MiniLM fine-tuning with and without the callback", 600),
    ("bench_baselines.py", "Training with attnflows vs what users would otherwise write (time and disk)", 600),
    ("bench_flow.py", "Flow and rollout speed vs the networkx Edmonds-Karp reference", 480),
    ("bench_import.py", "Plugin import: what TensorBoard pays at start with attnflows installed", 300),
    ("bench_plugin.py", "Plugin: server-side latency per route at 10, 100 and 1,000 snapshots", 400),
    ("bench_safety.py", "Hostile files: limited decode vs lzma.decompress; checked reads and in-memory writes vs plain h5py", 300),
    ("bench_frontend.py", "Frontend: first render and scrub frame time in headless Chromium", 300),
    ("bench_frontend_long.py", "Frontend at BERT-base size: 12x12 heads, 64 probes, 128 and 512 tokens", 3000),
    ("measure_long_routes.py", "Server work per step at 128 and 512 tokens, with and without the step products", 900),
    ("bench_gpu.py", "GPU: overhead and snapshot cost under bf16 autocast, sdpa training, eager probe pass", 600),
    ("bench_big_model.py", 'A ~1B Llama-style decoder at 512 tokens: top_k and rows="cls" against a full snapshot', 3600),
]
OUTPUT = os.path.join(ROOT, "docs", "benchmarks.md")
NOTES = os.path.join(ROOT, "benchmarks", "NOTES.md")
NOTES_HEADING = "## Notes:"


def run_script(script: str, timeout: int) -> tuple[list[Figure], str]:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout} s"
    figures = [Figure(**{k: v for k, v in json.loads(line[len(FIGURE_PREFIX):]).items() if k != "ratio"})
               for line in done.stdout.splitlines() if line.startswith(FIGURE_PREFIX)]
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return figures, f"exit {done.returncode}: " + " / ".join(tail)
    return figures, f"{time.monotonic() - start:.0f} s"


def render(results: list[tuple[str, str, list[Figure], str]]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m benchmarks` (`make bench`) on {datetime.date.today().isoformat()}.",
        f"Machine: {machine()}.",
        "",
        "Every figure is a median of several runs; every comparison is paired (A/B/A/B) in one process,",
        "and timings are reported as ratios against a baseline measured in the same run. Goals that are",
        "missed are marked **missed** with the number; the notes at the end explain why and what would close them.",
        "",
    ]
    for result in results:
        lines += render_section(*result)
    return "\n".join(lines + notes())


def render_section(script: str, title: str, figures: list[Figure], status: str) -> list[str]:
    lines = [f"## {title}", "", f"`benchmarks/{script}` ({status})", ""]
    if not figures:
        return lines + ["No figures: the script produced none here (for the GPU benchmark: no CUDA device; see the notes).", ""]
    lines += ["| figure | value | baseline | ratio | goal | met | note |", "|---|---|---|---|---|---|---|"]
    for f in figures:
        baseline = "" if f.baseline is None else f"{f.baseline:.4g} {f.unit} ({f.baseline_name})"
        ratio = "" if f.ratio is None else f"{f.ratio:.3f}x"
        met = "" if f.met is None else ("yes" if f.met else "**missed**")
        lines.append(f"| {f.name} | {f.value:.4g} {f.unit} | {baseline} | {ratio} | {f.goal} | {met} | {f.note} |")
    return lines + [""]


def notes() -> list[str]:
    return [open(NOTES, encoding="utf-8").read().strip(), ""] if os.path.exists(NOTES) else []


def update(existing: str, results: list[tuple[str, str, list[Figure], str]]) -> str:
    """``existing`` with the sections of ``results`` replaced (each marked with today's date), and fresh notes."""
    body = existing[:existing.index(NOTES_HEADING)] if NOTES_HEADING in existing else existing
    sections = body.split("\n## ")
    today = datetime.date.today().isoformat()
    for script, title, figures, status in results:
        fresh = "\n".join(render_section(script, title, figures, f"{status}, re-run on {today} on {machine()}"))
        matches = [k for k, section in enumerate(sections) if k and section.startswith(title + "\n")]
        if matches:
            sections[matches[0]] = fresh[len("## "):]
        else:
            sections.append(fresh[len("## "):])
    return "\n## ".join(section.rstrip("\n") + "\n" for section in sections) + "\n" + "\n".join(notes())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run only the scripts whose file name contains this text")
    parser.add_argument("--no-write", action="store_true", help="print figures, do not rewrite docs/benchmarks.md")
    parser.add_argument("--update", action="store_true",
                        help="replace only the sections of the scripts run in the existing docs/benchmarks.md")
    args = parser.parse_args(argv)
    chosen = [s for s in SCRIPTS if not args.only or args.only in s[0]]
    if not chosen:
        parser.error(f"--only {args.only!r} matches none of {[s[0] for s in SCRIPTS]}")
    results = []
    for script, title, timeout in chosen:
        print(f"== {script}: {title}", flush=True)
        figures, status = run_script(script, timeout)
        for figure in figures:
            print("   " + figure.line())
        print(f"   ({status})", flush=True)
        results.append((script, title, figures, status))
    if not args.no_write:
        if args.update and os.path.exists(OUTPUT):
            with open(OUTPUT, encoding="utf-8") as f:
                text = update(f.read(), results)
        else:
            text = render(results)
        with open(OUTPUT, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(OUTPUT, ROOT)}")
    return 0 if all(s.endswith(" s") for *_, s in results) else 1


if __name__ == "__main__":
    sys.exit(main())
