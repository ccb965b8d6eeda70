"""What fine-tuning did to cross-segment attention in a recorded sentence-pair run.

For every probe example (a premise and a hypothesis) it reads the recorded attention at two
steps (default: the first and the last snapshot) and reports, per layer, averaged over heads
and examples:

- ``[CLS] -> premise``: the attention mass the classification token puts on the premise's
  tokens (and, for comparison, on the hypothesis's);
- ``hypothesis -> premise``: the mass each hypothesis token puts on the premise, averaged over
  the hypothesis's tokens (and the reverse, ``premise -> hypothesis``);
- ``cue alignment``: for the bundled entailment probe, the mass from the hypothesis's cue
  words ("not", "cold", "some", ...) onto the premise's cue words ("hot", "all", ...), and that
  mass as a share of everything those tokens put on the premise (``cue_share_if_uniform`` is that
  share if they spread their premise attention evenly over the premise's tokens);
- the [CLS] attention rollout of the top layer (:func:`attnflows_callback.analysis.rollout`):
  how much of its input comes from each segment through all layers.

The segments are found from the stored word ids: the premise is the run of word tokens before
the first special token that follows a word, the hypothesis the word tokens after it. This holds
for BERT ([CLS] A [SEP] B [SEP]) and RoBERTa (<s> A </s></s> B </s>) encodings alike.

    python examples/plain_loop.py --task entailment --logdir demo_runs
    python examples/cross_segment_attention.py demo_runs/plain_loop-entailment-lr0.0001-seed0-<time>
    python examples/cross_segment_attention.py RUN --steps 0 40 --json cross.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
LAYER_MEASURES = ["cls_to_premise", "cls_to_hypothesis", "hypothesis_to_premise", "premise_to_hypothesis",
                  "cue_to_cue", "cue_share", "cue_share_if_uniform"]


def segment_positions(word_ids) -> tuple[np.ndarray, np.ndarray]:
    """(premise positions, hypothesis positions) of a pair's word tokens; special tokens belong to neither.

    Example:
        >>> [p.tolist() for p in segment_positions([-1, 0, 1, 1, -1, 0, 1, -1])]
        [[1, 2, 3], [5, 6]]
    """
    special = np.array([w is None or int(w) < 0 for w in word_ids])
    words = np.flatnonzero(~special)
    if words.size == 0:
        raise ValueError("the example has no word tokens")
    boundary = next((p for p in range(words[0], len(special)) if special[p]), None)
    if boundary is None or not (~special[boundary:]).any():
        raise ValueError("the example has one segment, not a sentence pair (no special token between two runs "
                         "of word tokens); record a pair run, e.g. `examples/plain_loop.py --task entailment`")
    return words[words < boundary], words[words > boundary]


def cue_positions(tokens: list[str], word_ids, positions: np.ndarray, cues: list[str]) -> np.ndarray:
    """Positions (all word pieces) of the words in ``cues`` among ``positions``, matched case-insensitively."""
    from attnflows_callback.analysis import word_units

    wanted = set(cues)
    found = []
    inside = set(positions.tolist())
    for unit in word_units(word_ids):
        if unit[0] in inside:
            word = "".join(tokens[p].removeprefix("##").removeprefix("Ġ") for p in unit).lower()
            if word in wanted:
                found.extend(unit.tolist())
    return np.asarray(sorted(found), dtype=int)


def cross_segment_masses(attention: np.ndarray, premise: np.ndarray, hypothesis: np.ndarray,
                         premise_cues: np.ndarray | None = None, hypothesis_cues: np.ndarray | None = None,
                         cls: int = 0) -> dict[str, np.ndarray]:
    """Per-layer masses (mean over heads) for one example's ``[L, H, T, T]`` attention; see the module docstring.

    Example:
        >>> attn = np.full((1, 1, 4, 4), 0.25)          # uniform over [CLS] a [SEP] b
        >>> m = cross_segment_masses(attn, np.array([1]), np.array([3]))
        >>> float(m["cls_to_premise"][0]), float(m["hypothesis_to_premise"][0])
        (0.25, 0.25)
    """
    heads_mean = attention.mean(axis=1)  # [L, T, T]
    out = {
        "cls_to_premise": heads_mean[:, cls, premise].sum(-1),
        "cls_to_hypothesis": heads_mean[:, cls, hypothesis].sum(-1),
        "hypothesis_to_premise": heads_mean[:, hypothesis][:, :, premise].sum(-1).mean(-1),
        "premise_to_hypothesis": heads_mean[:, premise][:, :, hypothesis].sum(-1).mean(-1),
    }
    if premise_cues is not None and hypothesis_cues is not None and premise_cues.size and hypothesis_cues.size:
        from_cues = heads_mean[:, hypothesis_cues]  # [L, c, T]
        on_cues = from_cues[:, :, premise_cues].sum(-1).mean(-1)
        on_premise = from_cues[:, :, premise].sum(-1).mean(-1)
        out["cue_to_cue"] = on_cues
        out["cue_share"] = on_cues / np.maximum(on_premise, 1e-12)
        out["cue_share_if_uniform"] = np.full(len(on_cues), premise_cues.size / premise.size)
    return out


def rollout_masses(attention: np.ndarray, premise: np.ndarray, hypothesis: np.ndarray, cls: int = 0) -> dict:
    """The top layer's [CLS] rollout mass on the premise, the hypothesis and the special tokens."""
    from attnflows_callback.analysis import rollout

    row = rollout(attention)[-1][cls]
    on_premise, on_hypothesis = float(row[premise].sum()), float(row[hypothesis].sum())
    return {"premise": on_premise, "hypothesis": on_hypothesis, "special": 1.0 - on_premise - on_hypothesis}


def measure(run, steps: list[int], records: list[dict] | None) -> dict:
    """Means over the probe examples: per-layer masses, rollout masses and accuracy at each step, by phenomenon."""
    per_example = []
    for i in range(run.num_examples):
        word_ids, tokens = run.word_ids(i), run.tokens(i)
        if word_ids is None:
            raise SystemExit("the run stores no word ids, so its segments cannot be found")
        premise, hypothesis = segment_positions(word_ids)
        cues = (None, None)
        if records is not None:
            cues = (cue_positions(tokens, word_ids, premise, records[i]["premise_cues"]),
                    cue_positions(tokens, word_ids, hypothesis, records[i]["hypothesis_cues"]))
        values = {}
        for step in steps:
            attention = np.asarray(run.attention(i, step), dtype=np.float64)
            values[step] = {"layers": cross_segment_masses(attention, premise, hypothesis, *cues),
                            "rollout": rollout_masses(attention, premise, hypothesis)}
        per_example.append(values)
    groups = {"all": list(range(run.num_examples))}
    if records is not None:
        for k, record in enumerate(records):
            groups.setdefault(record["phenomenon"], []).append(k)
    labels = np.asarray(run.labels) if run.labels is not None else None
    result = {}
    for group, members in groups.items():
        result[group] = {}
        for step in steps:
            layers = {name: np.mean([per_example[k][step]["layers"][name] for k in members
                                     if name in per_example[k][step]["layers"]], axis=0).tolist()
                      for name in LAYER_MEASURES if any(name in per_example[k][step]["layers"] for k in members)}
            rolled = {name: float(np.mean([per_example[k][step]["rollout"][name] for k in members]))
                      for name in ("premise", "hypothesis", "special")}
            predictions = run.predictions(step)
            accuracy = (None if predictions is None or labels is None
                        else float((predictions[members] == labels[members]).mean()))
            result[group][step] = {"layers": layers, "rollout": rolled, "accuracy": accuracy}
    return result


def matching_records(run, probe: Path | None) -> list[dict] | None:
    """The probe file's records if they are the run's probe examples (same premise and hypothesis), else None."""
    from attnflows_callback.probe import read_records

    path = probe or DATA_DIR / "entailment_probe.jsonl"
    if not path.is_file():
        return None
    records = read_records(path)
    same = (len(records) == run.num_examples and [r.get("text") for r in records] == run.texts
            and [r.get("text_pair") for r in records] == run.text_pairs)
    if not same or not all("premise_cues" in r and "phenomenon" in r for r in records):
        if probe is not None:
            raise SystemExit(f"{path} does not hold the run's probe examples with cue words and phenomena")
        return None
    return records


def _change(before, after, fmt: str = ".4f") -> str:
    return f"{format(before, fmt)} -> {format(after, fmt)}"


def format_report(result: dict, steps: list[int]) -> str:
    """The tables :func:`main` prints: per layer (all examples), then per phenomenon (mean over layers)."""
    first, last = steps[0], steps[-1]
    everything = result["all"]
    lines = []
    accuracy = [everything[s]["accuracy"] for s in (first, last)]
    if None not in accuracy:
        lines.append(f"probe accuracy: step {first} {accuracy[0]:.3f} -> step {last} {accuracy[1]:.3f}")
    names = [n for n in LAYER_MEASURES if n in everything[first]["layers"]]
    before, after = everything[first]["layers"], everything[last]["layers"]
    lines.append(f"\nper layer, mean over heads and examples: step {first} -> step {last}")
    lines.append("  layer " + "".join(f"{n:>24}" for n in names))
    for layer in range(len(before[names[0]])):
        cells = "".join(f"{before[n][layer]:>11.4f} -> {after[n][layer]:<9.4f}" for n in names)
        lines.append(f"  {layer:>5} {cells}")
    means = "".join(f"{np.mean(before[n]):>11.4f} -> {np.mean(after[n]):<9.4f}" for n in names)
    lines.append(f"  {'mean':>5} {means}")
    lines.append(f"\nper phenomenon, mean over layers: step {first} -> step {last}")
    lines.append(f"  {'group':<12} {'accuracy':>16} {'[CLS] -> premise':>22} {'hypothesis -> premise':>22} "
                 f"{'cue share':>22} {'(if uniform)':>12} {'rollout on premise':>22}")
    for group, by_step in result.items():
        a, b = by_step[first], by_step[last]
        la, lb = a["layers"], b["layers"]
        accuracy = _change(a["accuracy"], b["accuracy"], ".3f") if a["accuracy"] is not None else ""
        has_cues = "cue_share" in la
        cue = _change(np.mean(la["cue_share"]), np.mean(lb["cue_share"])) if has_cues else ""
        uniform = f"{np.mean(la['cue_share_if_uniform']):.4f}" if has_cues else ""
        cls = _change(np.mean(la["cls_to_premise"]), np.mean(lb["cls_to_premise"]))
        hypothesis = _change(np.mean(la["hypothesis_to_premise"]), np.mean(lb["hypothesis_to_premise"]))
        rolled = _change(a["rollout"]["premise"], b["rollout"]["premise"])
        lines.append(f"  {group:<12} {accuracy:>16} {cls:>22} {hypothesis:>22} {cue:>22} {uniform:>12} {rolled:>22}")
    roll_a, roll_b = everything[first]["rollout"], everything[last]["rollout"]
    lines.append(f"\n[CLS] rollout of the top layer (all examples): premise {roll_a['premise']:.4f} -> "
                 f"{roll_b['premise']:.4f}, hypothesis {roll_a['hypothesis']:.4f} -> {roll_b['hypothesis']:.4f}, "
                 f"special tokens {roll_a['special']:.4f} -> {roll_b['special']:.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[-1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a recorded sentence-pair run")
    p.add_argument("--steps", type=int, nargs=2, default=None, metavar=("FROM", "TO"),
                   help="the two steps to compare (default: the first and the last snapshot)")
    p.add_argument("--probe", type=Path, default=None,
                   help="probe records with premise_cues, hypothesis_cues and phenomenon (default: the bundled "
                        "entailment probe, used if it is the run's probe)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)

    from attnflows_callback import open_run

    run = open_run(args.run_dir)
    if run.text_pairs is None:
        p.error(f"{args.run_dir} is not a sentence-pair run (its probe has no text_pairs); record one with "
                "`python examples/plain_loop.py --task entailment`")
    recorded = [int(s) for s in run.steps]
    steps = args.steps or [recorded[0], recorded[-1]]
    missing = [s for s in steps if s not in recorded]
    if missing:
        p.error(f"--steps: step {missing[0]} was not recorded; recorded steps: {recorded}")
    result = measure(run, steps, matching_records(run, args.probe))
    print(f"run: {run.run_dir}")
    print(format_report(result, steps))
    if args.json:
        args.json.write_text(json.dumps({"run": str(run.run_dir), "steps": steps, "result": result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
