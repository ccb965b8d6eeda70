"""Reading probe examples from files: ``.csv`` (header row), ``.jsonl`` and ``.json`` (an array or JSON lines).

Errors name the file, the line (and column) and the fix.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

RECORD_SUFFIXES = (".csv", ".jsonl", ".json")


def read_records(path: str | os.PathLike) -> list[dict]:
    """The rows of a ``.csv`` (header row), ``.jsonl`` or ``.json`` file (see :func:`read_json_records`).

    Raises:
        ValueError: another suffix, or what :func:`read_json_records` raises.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise ValueError(f"{path.name}: the file must be one of {RECORD_SUFFIXES}, got {suffix or 'no suffix'!r}")
    if suffix != ".csv":
        return read_json_records(path)
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


JSON_LAYOUTS = "a JSON array of objects, or one JSON object per line (JSON lines)"


def read_json_records(path: str | os.PathLike) -> list[dict]:
    """The objects of a JSON array file or a JSON lines file, whatever its suffix.

    The first non-blank character decides: ``[`` is an array, anything else is JSON lines
    (what ``datasets.load_dataset("json")`` accepts, minus its ``field=`` option).

    Raises:
        ValueError: naming the file, the line (and column) and the fix, when the file is not
            valid JSON, is a single object, or holds a row that is not an object.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path.name}: line {err.lineno}, column {err.colno} is not valid JSON ({err.msg}); the file starts "
                f"with '[' so it is read as one JSON array: fix that line, or write {JSON_LAYOUTS}"
            ) from None
        lines = None
    else:
        rows, lines = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                spread = line.strip().startswith("{") and not line.strip().endswith("}")
                hint = (" (an object spread over several lines: put each object on one line, or wrap them in "
                        "[...] as a JSON array)" if spread else "")
                raise ValueError(
                    f"{path.name}: line {number} is not valid JSON ({err.msg}, column {err.colno}){hint}; "
                    f"the file must hold {JSON_LAYOUTS}: fix line {number}"
                ) from None
            lines.append(number)
        if len(rows) == 1 and isinstance(rows[0], dict) and any(
                isinstance(v, list) and v and isinstance(v[0], dict) for v in rows[0].values()):
            raise ValueError(
                f"{path.name}: holds one JSON object with the rows under a key ({sorted(rows[0])}); "
                "pass the rows themselves: ProbeSet.from_records(json.load(open(path))[KEY])"
            )
    if not rows:
        raise ValueError(f"{path.name} holds no probe examples; it must hold {JSON_LAYOUTS}")
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            where = f"line {lines[k]}" if lines is not None else f"element {k} of the array"
            kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(row), "number")
            raise ValueError(
                f"{path.name}: {where} is a JSON {kind}, not an object; each probe example must be "
                'an object such as {"text": "...", "label": 0}'
            )
    return rows
