"""Keyword arguments to the command line's options, and back to docstrings.

The options are the `unet` program's (its option table in C++, read through `_unet`): a keyword
names an option with dashes as underscores (``data_dir`` for ``--data-dir``), its value is
written the way the command line takes it, and the C++ parser checks it with the program's own
messages. Nothing here knows an option's default or range.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import tempfile
import textwrap
from typing import Any, Callable, Sequence

from . import _unet


@functools.lru_cache(maxsize=None)
def option_table(command: str) -> dict[str, dict]:
    """The options of ``command`` (a subcommand, or "segment" for `Segmenter.load`) by keyword."""
    raw = _unet.segment_options() if command == "segment" else _unet.command_options(command)
    table = {}
    for option in raw:
        for name in option["names"]:
            table.setdefault(name.replace("-", "_"), option)
    return table


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def to_args(command: str, options: dict[str, Any], caller: str) -> list[str]:
    """``options`` as command-line arguments of ``command``; None values are left out."""
    table = option_table(command)
    args: list[str] = []
    for key, value in options.items():
        option = table.get(key)
        if option is None:
            near = difflib.get_close_matches(key, table, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise TypeError(f"{caller}() got an unexpected keyword argument '{key}'{hint}")
        if value is None:
            continue
        flag = "--" + option["names"][0]
        if option["flag"]:
            if not isinstance(value, bool):
                raise TypeError(f"{caller}(): {key} is True or False, got {value!r}")
            if value:
                args.append(flag)
        elif option["optional_value"] and value is True:
            args.append(flag)
        elif option["optional_value"] and value is False and option["default"] not in ("on", "off"):
            continue  # an option that is off unless given, not an on|off switch (instances)
        elif option["many"] and isinstance(value, (list, tuple)):
            args += [flag, *(_text(v) for v in value)]
        elif isinstance(value, (list, tuple)):
            args.append(f"{flag}={','.join(_text(v) for v in value)}")
        else:
            args.append(f"{flag}={_text(value)}")
    return args


def describe(command: str, summary: str) -> str:
    """A docstring: ``summary`` and the keyword arguments the option table offers."""
    seen, lines = set(), []
    for key, option in option_table(command).items():
        if id(option) in seen:
            continue
        seen.add(id(option))
        kind = "bool" if option["flag"] else ("bool | str" if option["optional_value"] else "value")
        default = f" (default: {option['default']})" if option["default"] else ""
        lines.append(f"{key} ({kind}){default}")
        lines += textwrap.wrap(option["help"], 88, initial_indent="    ", subsequent_indent="    ")
    return summary + "\n\nKeyword arguments (the options of `unet " + command.replace("_", "-") + "`):\n\n" + "\n".join(lines)


Progress = Callable[[int, int, float, float], Any]


def run(command: str, options: dict[str, Any], progress: Progress | None = None) -> dict | None:
    """Runs the subcommand ``command`` with ``options`` in this process.

    Returns the results the command wrote as JSON (evaluate's eval_results.json, score's record,
    cross-validate's cv_results.json, benchmark's record), read back as a dict; otherwise None.
    `score` without ``output`` writes its record to a temporary file, read and removed."""
    temporary = None
    if command == "score" and options.get("output") is None:
        handle, temporary = tempfile.mkstemp(prefix="unet-score-", suffix=".json")
        os.close(handle)
        options = {**options, "output": temporary}
    try:
        args = [command, *to_args(command, options, command.replace("-", "_"))]
        _, results = _unet.run_command(args, progress)  # no help text: the keywords have no --help
        if not results:
            return None
        with open(results[-1], encoding="utf-8") as f:
            return json.load(f)
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def commands() -> Sequence[str]:
    return tuple(_unet.command_names())
