"""The base of the config dataclasses: validate, to_dict and from_dict, from the declarations.

Every field of a config is declared once with :func:`vidseq.extract.params.setting`
(type, bounds, choices, help); a field that holds another config (``head``,
``fit``) nests it. Validation, the ``config.json`` layout and the command
line's flags all come from those declarations.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from vidseq.extract.decode.faces import FaceCrop
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.params import Param, declared, refuse_unknown

RETIRED_KEYS = ("resume",)
"""Keys that older ``config.json`` files hold and that name no setting any more (ignored)."""


class Config:
    """validate / to_dict / from_dict of the config dataclasses (sub-configs nested)."""

    ALIASES: ClassVar[dict] = {}
    """Older names of settings, read as the new ones: ``{old: new}``."""

    @classmethod
    def params(cls) -> tuple[Param, ...]:
        """The declaration of every field, those of the sub-configs included (flattened)."""
        out = []
        for f in dataclasses.fields(cls):
            default = f.default_factory() if callable(f.default_factory) else f.default
            if isinstance(default, Config):
                out.extend(type(default).params())
        own = {param.name: param for param in declared(cls)}
        return (*out, *own.values())

    @classmethod
    def defaults(cls) -> dict:
        """``{name: default}`` of every setting of a default instance (sub-configs flattened)."""
        return flat(cls())

    def validate(self):
        """Raises UsageError naming the first bad field; returns self."""
        params = {param.name: param for param in declared(type(self))}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Config):
                value.validate()
            else:
                params[f.name].validate(value)
        return self

    def to_dict(self):
        """The fields as a JSON-ready dict (sub-configs as nested dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (Config, SamplingConfig, FaceCrop)):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [int(v) for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data, *, strict=True):
        """Builds a config from :meth:`to_dict` output, or from a flat dict.

        A sub-config is read from its nested dict when there is one, else from
        the keys of ``data`` itself (the flat layout of older runs, e.g.
        ``{"units": 16, "epochs": 3}``). Missing keys keep their defaults; the
        older names in ``ALIASES`` and the retired keys of
        :data:`RETIRED_KEYS` are read as older ``config.json`` files wrote them.

        Args:
            data: The dict.
            strict: Refuse keys that name no setting (the default); False ignores them.

        Raises:
            UsageError: With ``strict``, a key that names no setting, with the
                nearest valid name.
        """
        if strict:
            given = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
            refuse_unknown(given, cls.setting_names(), cls.__name__)
        defaults = cls()
        values = {}
        for f in dataclasses.fields(cls):
            default = getattr(defaults, f.name)
            if isinstance(default, Config):
                nested = data.get(f.name)
                source = nested if isinstance(nested, dict) else data
                values[f.name] = dataclasses.replace(default, **type(default).read_fields(source))
        values.update(
            {
                k: v
                for k, v in cls.read_fields(data).items()
                if not isinstance(getattr(defaults, k), Config)
            }
        )
        return cls(**values)

    @classmethod
    def read_fields(cls, data):
        """The values in ``data`` of this config's own fields (aliases and JSON forms read)."""
        known = {f.name for f in dataclasses.fields(cls)}
        out = {}
        for key, value in data.items():
            name = cls.ALIASES.get(key, key)
            if name in known and (name == key or name not in data):
                out[name] = decode(name, value)
        return out

    @classmethod
    def setting_names(cls):
        """Every field name, those of the sub-configs and the older aliases included."""
        names = set(cls.ALIASES)
        for f in dataclasses.fields(cls):
            names.add(f.name)
            default = f.default_factory() if callable(f.default_factory) else f.default
            if isinstance(default, Config):
                names |= default.setting_names()
        return names


def decode(name, value):
    """A field's value from its JSON form (tuples, SamplingConfig, FaceCrop)."""
    if name in ("input_size", "dilations") and isinstance(value, list):
        return tuple(value)
    if name == "sampling" and isinstance(value, dict):
        return SamplingConfig.from_dict(value)
    if name == "face_crop" and isinstance(value, dict):
        return FaceCrop.from_dict(value)
    return value


def flat(config) -> dict:
    """A config's fields as one flat dict (sub-configs' fields at the top level)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Config):
            out.update(flat(value))
        else:
            out[f.name] = value
    return out
