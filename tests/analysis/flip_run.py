"""A constructed run where the answer is known: one head of one example moves from [CLS] to the
word "bad" between steps 10 and 20, and that example's prediction flips there."""

import numpy as np

from attnflows_callback.store import RunWriter

TOKENS = [["[CLS]", "the", "film", "was", "bad", "[SEP]"], ["[CLS]", "it", "was", "fine", "[SEP]"]]
WORD_IDS = [[-1, 0, 1, 2, 3, -1], [-1, 0, 1, 2, -1]]
LAYERS, HEADS = 2, 3
MOVED = (1, 2)  # the head that changes
BAD = 4  # position of "bad" in example 0


def parked(n_tokens: int) -> np.ndarray:
    """Every head parks on the special tokens: 0.6 on [CLS], 0.3 on [SEP], 0.1 on itself."""
    rows = np.zeros((n_tokens, n_tokens))
    rows[:, 0] += 0.6
    rows[:, -1] += 0.3
    rows[np.arange(n_tokens), np.arange(n_tokens)] += 0.1
    return np.broadcast_to(rows, (LAYERS, HEADS, n_tokens, n_tokens)).copy()


def constructed_run(run_dir):
    writer = RunWriter(
        run_dir,
        meta={"probe_id": "p", "model": {"identity": "m"}, "streams": {"self": {"layers": LAYERS, "heads": HEADS}},
              "classification_position": "first"},
        probe_arrays={"texts": ["the film was bad", "it was fine"], "labels": np.array([0, 1]),
                      "label_names": ["negative", "positive"], "input_ids": [[1] * 6, [1] * 5],
                      "tokens": TOKENS[0] + TOKENS[1], "word_ids": WORD_IDS, "truncated": np.zeros(2, bool)},
        marker_events_file=False,
    )
    logits = {0: [[-1.0, 1.0], [-1.0, 1.0]], 10: [[-0.5, 0.5], [-1.0, 1.0]], 20: [[1.0, -1.0], [-1.0, 1.0]]}
    for step in (0, 10, 20):
        attention = [parked(6), parked(5)]
        if step == 20:
            layer, head = MOVED
            attention[0][layer, head] = 0.0
            attention[0][layer, head, :, 0] = 0.2
            attention[0][layer, head, :, BAD] = 0.8
        writer.write_snapshot(step, attention={"self": [a.astype(np.float32) for a in attention]},
                              logits=np.array(logits[step]))
    writer.set_status("finished")
    return run_dir
