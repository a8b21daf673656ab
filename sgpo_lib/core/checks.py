"""The one validation helper of the frozen config dataclasses (`config`, `toy.config`): `check`
raises `ConfigError`, a `ValueError` whose message names the key and the fix."""


class ConfigError(ValueError):
    """A params file, key or combination is invalid; the message names where and the fix."""


def check(ok: bool, key: str, message: str) -> None:
    """Raise `ConfigError("key '<key>': <message>")` unless `ok`.

    Example:
        >>> check(True, "train.lr", "must be > 0")
        >>> check(False, "train.lr", "must be > 0")
        Traceback (most recent call last):
        ...
        sgpo_lib.core.checks.ConfigError: key 'train.lr': must be > 0
    """
    if not ok:
        raise ConfigError(f"key '{key}': {message}")
