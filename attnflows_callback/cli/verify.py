"""``attnflows verify RUN_DIR --checkpoint P``: recompute a snapshot from a saved checkpoint (logic in ../verify.py)."""

from __future__ import annotations

from .common import CLIError, HelpFormatter, add_run_dir, describe


def add_parser(commands) -> None:
    """Register ``verify``."""
    verify = commands.add_parser(
        "verify",
        help="recompute a snapshot from a saved checkpoint and compare (exit status 1 if it differs)",
        description=describe("Load a checkpoint (a Hugging Face checkpoint-N directory, or a Lightning .ckpt), "
                              "feed it the probe inputs stored in the run, and print the max difference per "
                              "attention stream and for the logits against the snapshot at the checkpoint's "
                              "optimizer step. Exit status 0 within the encoding's error, 1 beyond it, 2 when the "
                              "two cannot be compared. See attnflows_callback/verify.py for the model factory."),
        formatter_class=HelpFormatter,
    )
    add_run_dir(verify)
    verify.add_argument("--checkpoint", required=True, help="Hugging Face checkpoint directory or Lightning .ckpt")
    verify.add_argument("--step", type=int, default=None,
                        help="snapshot step to compare with (default: the step the checkpoint was saved at)")
    verify.add_argument("--model-factory", default=None, metavar="MODULE:FUNCTION",
                        help="for a .ckpt: a function returning the LightningModule its state_dict loads into "
                             "(default: the run's model class from run.json, found under any key prefix)")
    verify.add_argument("--atol", type=float, default=1e-4, help="float slack on top of the encoding's error")
    verify.set_defaults(handler=verify_command)


def verify_command(args) -> int:
    from ..verify import VerifyError, verify_checkpoint

    try:
        result = verify_checkpoint(args.run_dir, args.checkpoint, step=args.step, model_factory=args.model_factory,
                                   atol=args.atol)
    except (VerifyError, ValueError) as err:
        raise CLIError(str(err)) from None
    print(result.report())
    return 0 if result.passed else 1
