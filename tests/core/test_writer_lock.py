"""One writer per run, proven with real processes: simultaneous starts, a live writer and a resume, a killed writer.

Also what a writer leaves behind: files as readable as the umask allows, no orphaned
temporary files once the run is opened again, and an honest status after a SIGKILL.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from attnflows_callback import RunExistsError, open_run
from attnflows_callback.store import LOCK_NAME, RunLockedError, RunWriter, WriterLock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from attnflows_callback.store import RunExistsError, RunWriter
    run_dir, go, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    print("armed", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        writer = RunWriter(run_dir, meta={{"probe_id": "p", "model": {{"identity": "m"}},
                            "streams": {{"self": {{"layers": 1, "heads": 2}}}}}},
                           probe_arrays={{"texts": ["a"], "input_ids": [[1, 2, 3]], "tokens": ["x", "y", "z"],
                                          "truncated": np.zeros(1, bool)}},
                           resume=True, marker_events_file=False)
    except RunExistsError as err:
        print(json.dumps({{"refused": str(err), "holder": getattr(err, "holder", None)}}), flush=True)
        sys.exit(0)
    stale = writer.lock.stale_holder
    print(json.dumps({{"accepted": os.getpid(), "stale": stale, "removed": writer.removed_temporaries}}), flush=True)
    rng = np.random.default_rng(0)
    step = (writer.steps() or [-1])[-1] + 1
    while mode == "write" or sys.stdin.readline():  # "hold": keep the lock until stdin closes
        if mode == "write":
            weights = rng.random((1, 2, 3, 3)).astype(np.float32)
            writer.write_snapshot(step, attention={{"self": [weights / weights.sum(-1, keepdims=True)]}})
            step += 1
        else:
            break
    writer.set_status("finished")
    writer.close()
    """
)


def start_writers(tmp_path, run_dir, count, mode):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=ROOT))
    go = tmp_path / f"go-{time.monotonic_ns()}"
    procs = [subprocess.Popen([sys.executable, str(script), str(run_dir), str(go), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(count)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "armed"
    go.touch()  # every writer starts at once
    return procs, [json.loads(proc.stdout.readline()) for proc in procs]


def finish(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=60)


def test_of_simultaneous_starts_exactly_one_writer_is_accepted_and_the_others_learn_who(tmp_path):
    run_dir = tmp_path / "run"
    procs, said = start_writers(tmp_path, run_dir, 5, "hold")
    try:
        accepted = [s["accepted"] for s in said if "accepted" in s]
        refused = [s for s in said if "refused" in s]
        assert len(accepted) == 1 and len(refused) == 4, said
        for answer in refused:
            assert answer["holder"]["pid"] == accepted[0] and answer["holder"]["host"] == socket.gethostname()
            assert f"pid {accepted[0]}" in answer["refused"] and "being written by another writer" in answer["refused"]
    finally:
        finish(procs)
    assert not (run_dir / "attnflows" / LOCK_NAME).exists()  # released on close
    assert open_run(run_dir).status["status"] == "finished"


def test_resume_never_purges_a_live_writers_snapshots_and_a_killed_writers_lock_is_stale(tmp_path):
    run_dir = tmp_path / "run"
    (live,), (said,) = start_writers(tmp_path, run_dir, 1, "write")
    try:
        assert "accepted" in said
        snaps = run_dir / "attnflows" / "snapshots"
        while len([n for n in os.listdir(snaps) if n.endswith(".h5")]) < 5:
            time.sleep(0.05)
        before = open_run(run_dir).steps.tolist()
        procs, (second,) = start_writers(tmp_path, run_dir, 1, "hold")  # resume=True, while the first writes
        finish(procs)
        assert second["holder"]["pid"] == live.pid and "being written by another writer" in second["refused"]
        after = open_run(run_dir).steps.tolist()
        assert after[: len(before)] == before and len(after) >= len(before)  # nothing purged, still growing
        assert open_run(run_dir).status["status"] == "running"
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    # The killed writer's lock file is left behind, naming a process that is gone.
    status = open_run(run_dir).status
    assert status["status"] == "interrupted" and f"pid {live.pid} on this host" in status["reason"]
    orphan = snaps / ".step-000000999999.h5.deadbeef.tmp"
    orphan.write_bytes(b"half a shard")
    os.utime(orphan, (time.time() - 60, time.time() - 60))
    procs, (third,) = start_writers(tmp_path, run_dir, 1, "hold")
    finish(procs)
    assert third["stale"]["pid"] == live.pid and orphan.name in third["removed"]
    assert not [n for n in os.listdir(snaps) if n.endswith(".tmp")]
    run = open_run(run_dir)
    assert run.problems == [] and run.steps.tolist() == list(range(len(run.steps))) and len(run.steps) >= 5


def meta(**model):
    return {"probe_id": "p", "model": {"identity": "m", **model}, "streams": {"self": {"layers": 1, "heads": 1}}}


PROBE = {"texts": ["a"], "input_ids": [[1, 2]], "tokens": ["x", "y"], "truncated": np.zeros(1, bool)}


def test_a_second_writer_in_the_same_process_is_told_to_close_the_first(tmp_path):
    first = RunWriter(tmp_path, meta=meta(), probe_arrays=PROBE, marker_events_file=False)
    with pytest.raises(RunLockedError, match=r"close the earlier recorder \(or RunWriter\)") as refused:
        RunWriter(tmp_path, meta=meta(), probe_arrays=PROBE, resume=True, overwrite=True, marker_events_file=False)
    assert refused.value.holder["pid"] == os.getpid()
    first.write_snapshot(0, attention={"self": [np.full((1, 1, 2, 2), 0.5, np.float32)]})
    first.close()
    assert open_run(tmp_path).steps.tolist() == [0]  # overwrite=True did not touch the live writer's run


def test_a_lock_file_that_is_not_a_regular_file_is_refused_with_the_fix(tmp_path):
    (tmp_path / "attnflows").mkdir()
    os.mkfifo(tmp_path / "attnflows" / LOCK_NAME)
    with pytest.raises(RunExistsError, match="is a FIFO, not a lock file; remove it"):
        WriterLock(tmp_path / "attnflows").acquire()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_published_files_honour_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        writer = RunWriter(tmp_path, meta=meta(), probe_arrays=PROBE, marker_events_file=False)
        writer.write_snapshot(0, attention={"self": [np.full((1, 1, 2, 2), 0.5, np.float32)]})
        writer.set_status("finished")
        writer.close()
    finally:
        os.umask(previous)
    published = [p for p in (tmp_path / "attnflows").rglob("*") if p.is_file()]
    assert {p.name for p in published} == {"run.json", "status.json", "probe.h5", "step-000000000000.h5"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in published} == {p.name: oct(mode) for p in published}


def test_resume_refuses_a_model_of_another_shape_naming_both(tmp_path):
    two_classes = {"config": {"id2label": {"0": "neg", "1": "pos"}}}
    writer = RunWriter(tmp_path, meta=meta(**two_classes), probe_arrays=PROBE, marker_events_file=False)
    writer.write_snapshot(0, attention={"self": [np.full((1, 1, 2, 2), 0.5, np.float32)]}, logits=np.zeros((1, 2)))
    writer.close()
    three = meta(config={"id2label": {"0": "a", "1": "b", "2": "c"}})
    with pytest.raises(RunExistsError, match="the run has streams self=1x1, 2 classes; this model has streams "
                                             "self=1x1, 3 classes"):
        RunWriter(tmp_path, meta=three, probe_arrays=PROBE, resume=True, marker_events_file=False)
    wider = {**meta(**two_classes), "streams": {"self": {"layers": 1, "heads": 2}}}
    with pytest.raises(RunExistsError, match="the run has streams self=1x1, 2 classes; this model has streams "
                                             "self=1x2, 2 classes"):
        RunWriter(tmp_path, meta=wider, probe_arrays=PROBE, resume=True, marker_events_file=False)
    seq2seq = {**meta(**two_classes), "streams": {s: {"layers": 1, "heads": 1} for s in ("encoder", "decoder", "cross")}}
    with pytest.raises(RunExistsError, match="this model has streams cross=1x1,decoder=1x1,encoder=1x1"):
        RunWriter(tmp_path, meta=seq2seq, probe_arrays=PROBE, resume=True, marker_events_file=False)
    assert open_run(tmp_path).steps.tolist() == [0]
