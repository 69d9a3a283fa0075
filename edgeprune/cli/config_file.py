"""``edgeprune fit --config fit.toml``: a fit's options kept in a file, flags on the command line overriding it.

The file holds ``fit``'s long options as TOML keys, at the top level or under a ``[fit]`` table, spelled with
dashes or underscores::

    model = "torchvision:mobilenet_v3_small"
    weights = "weights/mobilenet_v3_small.pth"
    data = "images/val"
    target = "rpi5"
    budget = "20ms"
    finetune-epochs = 2
    export = ["onnx", "tflite"]        # a list: the option's comma-separated form
    reconstruct = false                # --no-reconstruct
    freeze = ["classifier"]            # an option taking several values

Each key becomes the option as it would be typed, placed before the command line's own flags, so a flag given on
the command line wins (argparse keeps the last). Relative paths in the file are relative to the file's folder. A
key that is not an option, a value of the wrong kind or a file that is not TOML is one line (exit code 2).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: options a config file may not set (the file itself, and what only the command line means)
NOT_IN_A_FILE = frozenset({"--config", "--help"})


def config_tokens(parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """The command-line tokens that the options in the TOML file at ``path`` stand for, in the file's order."""
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--config: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--config: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"--config: {path} is not valid TOML: {exc}") from None
    if isinstance(table.get("fit"), dict):
        table = table["fit"]
    actions = {a.option_strings[-1]: a for a in parser._actions
               if a.option_strings and a.option_strings[-1].startswith("--")}
    for action in parser._actions:  # --no-reconstruct's action is --reconstruct's
        for option in action.option_strings:
            actions.setdefault(option, action)
    base = Path(path).resolve().parent
    tokens: list[str] = []
    for key, value in table.items():
        flag = "--" + str(key).replace("_", "-")
        if flag in NOT_IN_A_FILE or flag not in actions:
            known = sorted(f[2:] for f in actions if f not in NOT_IN_A_FILE and not f.startswith("--no-"))
            close = difflib.get_close_matches(flag[2:], known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InputError(f"--config: {path}: '{key}' is not an option of edgeprune fit.{hint}")
        tokens += _tokens(actions[flag], flag, value, base, path)
    return tokens


def _tokens(action: argparse.Action, flag: str, value: Any, base: Path, path: Path) -> list[str]:
    """One option's tokens."""
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise InputError(f"--config: {path}: '{flag[2:]}' takes true or false, got {value!r}")
        return [flag if value else "--no-" + flag[2:].removeprefix("no-")]
    if action.nargs == 0:  # store_true
        if not isinstance(value, bool):
            raise InputError(f"--config: {path}: '{flag[2:]}' takes true or false, got {value!r}")
        return [flag] if value else []
    if isinstance(value, bool) or isinstance(value, dict):
        raise InputError(f"--config: {path}: '{flag[2:]}' takes a value, got {value!r}")
    values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if action.type is Path:
        values = [str(base / v) if not Path(v).is_absolute() else v for v in values]
    if action.nargs in ("+", "*"):
        return [flag, *values]
    return [flag, ",".join(values)]
