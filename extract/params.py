"""Parameters declared once: name, type, bounds, choices, default and help.

A :class:`Param` is the one declaration of a setting. From it come:

* the validation (:meth:`Param.validate`): one line that names the setting and
  quotes what it received (``batch_size must be an integer >= 1. Received:
  batch_size=0``);
* the command-line flag (:func:`add_flags`): ``--batch-size``, its type,
  choices, default and help, and any older spelling (``--rnn``, ``--no-normalize``);
* the API keyword and the ``config.json`` key (the declared name);
* the row of the flag tables in ``docs/cli.md`` (:func:`flags_table`).

A config dataclass declares its fields with :func:`setting` (the field's
name is the parameter's); a function's keyword parameters are declared as a
tuple of :class:`Param`. Choice lists that belong to a registry are given as
the registry's function (``choices=backbone_names``) and read when they are
needed, so a registered name is accepted everywhere at once.

This module imports nothing of vidseq but its errors and bounds (the upper bounds of
sizes, :mod:`vidseq.bounds`), so that every package may use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidseq.bounds import check_bound, is_finite_number
from vidseq.errors import UsageError

PARAM_KEY = "vidseq.param"
"""The key of a :class:`Param` in a dataclass field's ``metadata``."""


def is_int(value) -> bool:
    """An integer (NumPy's too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or float (NumPy's too), not a bool."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _text(number) -> str:
    return f"{number:g}"


@dataclass(frozen=True)
class Param:
    """The one declaration of a parameter.

    Attributes:
        name: The API keyword and ``config.json`` key; the flag is
            ``--`` + name with dashes unless ``flag`` says otherwise.
        kind: ``int``, ``float``, ``str`` or ``bool``; None when ``check`` decides.
        low: Least value (numbers); ``low_open`` excludes it.
        high: Greatest value (numbers); ``high_open`` excludes it.
        optional: None is a valid value (the default of "not set").
        choices: The valid values, or a function returning them (a registry's names).
        check: A predicate for values the above cannot describe; ``expected`` then
            says in words what it accepts.
        expected: What a valid value is, in the error (derived when None).
        help: The ``--help`` line.
        doc: The meaning column of ``docs/cli.md`` (``help`` when None).
        flag: The flag; ``""`` for a parameter the command line does not take.
        flag_type: What turns the flag's text into the value (``kind`` when None).
        metavar: The flag's metavar.
        aliases: Other flags that set this parameter, as ``(flag, argparse
            keywords)`` pairs (``("--no-normalize", {"action": "store_const",
            "const": "none"})``).
        exclusive: Flags of parameters with the same ``exclusive`` name form
            one mutually exclusive group.
        positional: A positional argument of the command (``name`` as its
            metavar unless ``metavar`` says otherwise), not a flag.
        nargs: argparse's ``nargs`` (a list of values).
        required: A flag the command cannot go without (``--out``).
        default: The default (for a :func:`setting`, the field's).
    """

    name: str = ""
    kind: type | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    choices: Sequence | Callable[[], Sequence] | None = None
    check: Callable[[Any], bool] | None = None
    expected: str | None = None
    help: str | None = None
    doc: str | None = None
    flag: str | None = None
    flag_type: Callable[[str], Any] | None = None
    metavar: str | None = None
    aliases: tuple = ()
    exclusive: str | None = None
    positional: bool = False
    nargs: str | None = None
    required: bool = False
    default: Any = None

    @property
    def flag_name(self) -> str:
        """The command-line flag (``""`` when there is none, or for a positional argument)."""
        if self.positional:
            return ""
        if self.flag is not None:
            return self.flag
        return "--" + self.name.replace("_", "-")

    def choice_list(self) -> tuple | None:
        """The valid values, read from the registry when ``choices`` is a function."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def expected_text(self) -> str:
        """What a valid value is, in words: ``an integer >= 1``, ``one of ('a', 'b')``."""
        if self.expected is not None:
            return self.expected
        if self.choices is not None:
            base = f"one of {list(self.choice_list())}"
        elif self.kind is bool:
            return "None, True or False" if self.optional else "True or False"
        elif self.kind is int:
            base = "an integer" + (f" >= {_text(self.low)}" if self.low is not None else "")
        elif self.kind is float:
            base = self._interval()
        else:
            base = "a string"
        return f"None or {base}" if self.optional else base

    def _interval(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_text(self.low)}, {_text(self.high)}{right}"
        if self.low is not None:
            return f"finite and {'>' if self.low_open else '>='} {_text(self.low)}"
        return "a finite number"

    def is_valid(self, value) -> bool:
        """Whether ``value`` is valid for this parameter."""
        if value is None:
            return self.optional
        if self.check is not None:
            return bool(self.check(value))
        if self.choices is not None:
            return value in self.choice_list()
        kinds = {bool: lambda v: isinstance(v, bool), int: is_int, float: is_finite_number}
        kinds[str] = lambda v: isinstance(v, str)
        if self.kind is not None and not kinds[self.kind](value):
            return False
        return self._in_bounds(value)

    def _in_bounds(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def validate(self, value):
        """Returns ``value``, or raises UsageError naming the parameter and quoting it."""
        try:
            ok = self.is_valid(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(
                f"{self.name} must be {self.expected_text()}. Received: {self.name}={value!r}"
            )
        check_bound(self.name, value)
        return value


def setting(default=None, *, default_factory=None, **declaration):
    """A dataclass field declared as a :class:`Param` (its name is the field's).

    Args:
        default: The field's default.
        default_factory: Instead of ``default``, a function that makes it.
        **declaration: The :class:`Param` attributes.
    """
    param = Param(**declaration)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={PARAM_KEY: param})
    return field(default=default, metadata={PARAM_KEY: param})


def declared(cls) -> tuple[Param, ...]:
    """The :class:`Param` of each field of the dataclass ``cls`` (nested configs not included)."""
    params = []
    for f in dataclasses.fields(cls):
        param = f.metadata.get(PARAM_KEY)
        if param is not None:
            default = f.default if f.default is not dataclasses.MISSING else None
            params.append(dataclasses.replace(param, name=f.name, default=default))
    return tuple(params)


def check_values(params: Iterable[Param], values: dict) -> None:
    """Validates each of ``values`` that a parameter of ``params`` declares (UsageError)."""
    for param in params:
        if param.name in values:
            param.validate(values[param.name])


def refuse_unknown(given: dict, known: Iterable[str], owner: str, what: str = "setting") -> None:
    """Raises UsageError for the first key of ``given`` not in ``known``, naming the nearest.

    Args:
        given: The settings given, ``{name: value}``.
        known: The valid names.
        owner: What they are settings of (``"TrainConfig"``).
        what: What a key is called in the message.
    """
    known = sorted(known)
    for key, value in given.items():
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise UsageError(f"{owner} has no {what} {key}{hint}. Received: {key}={value!r}")


def checked_keywords(function):
    """``function``, but a misspelt keyword raises UsageError naming the nearest valid one.

    Python's own TypeError names the unknown keyword only; the API functions of
    :mod:`vidseq` are wrapped with this so that ``epochz=3`` says ``epochs``.
    """
    parameters = inspect.signature(function).parameters
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [name for name, p in parameters.items() if p.kind in named]

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        unknown = {key: value for key, value in kwargs.items() if key not in names}
        if unknown:
            refuse_unknown(unknown, names, f"{function.__name__}()", "parameter")
        return function(*args, **kwargs)

    return wrapper


def _flag_kwargs(param: Param, default) -> dict:
    """``add_argument`` keywords of a parameter's own flag."""
    kwargs = {"dest": param.name, "default": default, "help": param.help}
    if param.required:
        kwargs["required"] = True
    if param.nargs is not None:
        kwargs["nargs"] = param.nargs
    if param.metavar is not None:
        kwargs["metavar"] = param.metavar
    elif param.flag and param.choices is None:  # --clips CLIPS, not --clips NUM_CLIPS
        kwargs["metavar"] = param.flag[2:].replace("-", "_").upper()
    if param.kind is bool and param.flag_type is None:
        return {**kwargs, "action": "store_const", "const": True}
    kwargs["type"] = param.flag_type or (param.kind if param.kind in (int, float) else None)
    if param.choices is not None:
        kwargs["choices"] = param.choice_list()
    return {k: v for k, v in kwargs.items() if v is not None or k in ("default", "help")}


def add_flags(parser, params: Iterable[Param], defaults: dict | None = None) -> None:
    """Adds the flags of ``params`` to an argparse parser (or argument group).

    Args:
        parser: The parser or group.
        params: The declarations, in the order their flags are listed.
        defaults: Default per parameter name, over the declared ones (a command's
            config can default differently from the field, e.g. finetune's lr).
    """
    defaults = defaults or {}
    groups = {}
    for param in params:
        default = defaults.get(param.name, param.default)
        if param.kind is bool and default is None and not param.optional:
            default = False
        target = parser
        if param.exclusive is not None:
            if param.exclusive not in groups:
                groups[param.exclusive] = parser.add_mutually_exclusive_group()
            target = groups[param.exclusive]
        if param.positional:
            _add_positional(target, param, default)
        elif param.flag_name:
            action = target.add_argument(param.flag_name, **_flag_kwargs(param, default))
            action.doc = param.doc  # the meaning column of docs/cli.md
        for i, (flag, kwargs) in enumerate(param.aliases):
            # Without a flag of its own, the first alias carries the default.
            alias_default = default if i == 0 and not param.flag_name else argparse.SUPPRESS
            action = target.add_argument(flag, dest=param.name, default=alias_default, **kwargs)
            if not param.flag_name:  # the alias is the parameter's flag in the docs
                action.doc = param.doc or (None if "help" in kwargs else param.help)


def _add_positional(parser, param: Param, default) -> None:
    kwargs = {"nargs": param.nargs, "help": param.help, "metavar": param.metavar}
    if param.nargs in ("?", "*"):
        kwargs["default"] = default
    if param.flag_type or param.kind in (int, float):
        kwargs["type"] = param.flag_type or param.kind
    parser.add_argument(param.name, **{k: v for k, v in kwargs.items() if v is not None})


TABLE_START = "<!-- flags: {command} -->"
TABLE_END = "<!-- /flags -->"
COMMON_FLAGS = ("-h", "--help", "--verbose")
"""Flags every command has, documented once, not in each command's table."""


def _default_text(default) -> str:
    if default is None or default is False or default is argparse.SUPPRESS:
        return ""
    if isinstance(default, (list, tuple)):
        default = " ".join(map(str, default))
    return f"`{default}`"


def flags_table(parser) -> str:
    """The Markdown table of one command's flags: flag, default, meaning (``docs/cli.md``).

    The meaning is the declaration's ``doc``, else the flag's help.
    """
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for action in parser._actions:  # argparse has no public list of a parser's actions
        flags = [flag for flag in action.option_strings if flag not in COMMON_FLAGS]
        if not flags:
            continue
        meaning = (getattr(action, "doc", None) or action.help or "").replace("|", "\\|")
        shown = ", ".join(f"`{flag}`" for flag in flags)
        rows.append(f"| {shown} | {_default_text(action.default)} | {meaning} |")
    return "\n".join(rows) + "\n"


def command_parsers(parser, prefix="") -> dict:
    """Every command of an argparse parser (``"cache merge"`` for a nested one), by name."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                nested = command_parsers(sub, full)
                out.update(nested or {full: sub})
    return out


def with_tables(text: str, parser) -> str:
    """``text`` (``docs/cli.md``) with each command's table between its markers regenerated.

    A command's table sits between ``<!-- flags: COMMAND -->`` and ``<!-- /flags -->``.
    """
    for name, sub in command_parsers(parser).items():
        start = TABLE_START.format(command=name)
        if start not in text:
            continue
        head, rest = text.split(start, 1)
        _, tail = rest.split(TABLE_END, 1)
        text = f"{head}{start}\n{flags_table(sub)}{TABLE_END}{tail}"
    return text


def parse_size(text: str) -> tuple[int, int]:
    """Parses a ``SIZE`` or ``HEIGHTxWIDTH`` flag (``224``, ``240x320``): ``(height, width)``."""
    parts = text.lower().split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SIZE or HEIGHTxWIDTH, e.g. 224 or 240x320. Received: {text!r}"
        ) from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH. Received: {text!r}")
    return values[0], values[1]


def is_size(value) -> bool:
    """A ``(height, width)`` pair of integers >= 1."""
    return len(value) == 2 and all(is_int(x) and x >= 1 for x in value)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``vidseq: error: ...``), exit 2."""

    def error(self, message):
        """Prints ``vidseq CMD: error: MESSAGE (see vidseq CMD --help)`` and exits with 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


FLAG_PATTERN = (
    r"(?<![\w.-]){name}=True\b|(?<![\w.-]){name}(?= must\b| should\b| needs\b| applies\b|=)"
    r"|(?<=needs ){name}\b|(?<=another ){name}\b"
)
"""Where a parameter's name is read as its flag in an error message."""


def as_flags(message: str, flags: dict) -> str:
    """A library error in the words of the command line.

    The API names parameters (``num_clips must be >= 1. Received: num_clips=0``);
    each parameter that is one of the command's ``flags`` (``{name: flag}``) is
    named by its flag instead (``--clips must be >= 1. Received: --clips=0``).
    """
    for name, flag in flags.items():
        message = re.sub(FLAG_PATTERN.format(name=re.escape(name)), flag, message)
    return message


def command_flags(parser) -> dict:
    """``{name: flag}`` of a command's parser, for :func:`as_flags`.

    The first flag of each action names it; ``out_dir``, the API's name of
    ``--out``, is read as ``--out`` too.
    """
    actions = [a for a in reversed(parser._actions) if a.option_strings]  # first flag wins
    flags = {a.dest: a.option_strings[0] for a in actions}
    if "out" in flags:
        flags.setdefault("out_dir", flags["out"])
    return flags
