"""The TensorBoard launcher of ``attnflows demo``: a free port, start, wait until it answers, stop on exit."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from .common import CLIError


def serve(logdir: Path, host: str, port: int, *, ready_timeout: float = 120.0) -> int:
    """Run TensorBoard on ``logdir`` until Ctrl-C, printing the Attention Flows URL once it answers."""
    port = free_port(host, port)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host,
               "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + ready_timeout
        while not _answers(host, port):
            if process.poll() is not None:
                raise CLIError(f"TensorBoard exited with status {process.returncode} before it served; see above")
            if time.monotonic() > deadline:
                raise CLIError(f"TensorBoard did not answer on {host}:{port} within {ready_timeout:.0f} s")
            time.sleep(0.25)
        shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
        print(f"Attention Flows: http://{shown}:{port}/#{_plugin_name()}", flush=True)
        print("TensorBoard is running; press Ctrl-C to stop it.", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def free_port(host: str, start: int, tries: int = 50) -> int:
    """The first port from ``start`` that nothing listens on (a second demo gets the next one)."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise CLIError(f"no free port on {host} in {start}-{start + tries - 1}; pass --port")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _plugin_name() -> str:
    try:
        from attnflows_tb.metadata import PLUGIN_NAME
    except ImportError:
        return "attnflows"
    return PLUGIN_NAME
