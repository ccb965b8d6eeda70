"""Hyperparameters that are safe to store: secrets are replaced before anything is written.

``run.json`` and the TensorBoard events file are served by TensorBoard to whoever can reach
it, without authentication, so a token in the hyperparameters must never get there. Every
way of recording (the plain :class:`~attnflows_callback.recorder.AttentionRecorder`, and the
Lightning and Hugging Face callbacks, which record through it) redacts with :func:`redact`.
"""

from __future__ import annotations

from collections.abc import Mapping

# A key is secret when, lower-cased, it is one of these or ends with "_" + one of these.
# "_token" is transformers' own rule for TrainingArguments (hub_token -> "<HUB_TOKEN>").
SECRET_NAMES = ("token", "password", "passwd", "secret", "api_key", "apikey", "access_key", "secret_key",
                "private_key", "credentials", "auth")


def is_secret(key: object) -> bool:
    """Whether a hyperparameter named ``key`` holds a secret.

    Example:
        >>> [is_secret(k) for k in ("hub_token", "WANDB_API_KEY", "pad_token_id", "learning_rate")]
        [True, True, False, False]
    """
    name = str(key).lower()
    return any(name == s or name.endswith("_" + s) for s in SECRET_NAMES)


def redact(hparams: Mapping) -> dict:
    """A copy of ``hparams`` whose secret values (at any depth) read ``"<KEY>"``, as transformers writes them.

    Example:
        >>> redact({"hub_token": "hf_abc", "lr": 0.1, "logger": {"api_key": "k"}})
        {'hub_token': '<HUB_TOKEN>', 'lr': 0.1, 'logger': {'api_key': '<API_KEY>'}}
    """
    return {key: _redacted(key, value) for key, value in hparams.items()}


def _redacted(key, value):
    if is_secret(key) and value is not None:
        return f"<{str(key).upper()}>"
    if isinstance(value, Mapping):
        return redact(value)
    return value
