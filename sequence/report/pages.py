"""Rendering a page: the Jinja2 templates beside this module, autoescaped, and writing it safely."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jinja2

from vidseq.sequence.runs.report_files import write_text
from vidseq.version import __version__

TEMPLATES = Path(__file__).with_name("templates")


@functools.cache
def _environment():
    """One environment per process: it compiles each template once and keeps it (a
    template file changed since is compiled again)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def as_text(value):
    """A setting as the page shows it: text as it is, anything else as sorted JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def render(template, **context):
    """The HTML text of ``template`` (a file name in ``templates/``) with ``context``."""
    return _environment().get_template(template).render(version=__version__, **context)


def write_page(path, html):
    """Writes ``html`` to ``path`` atomically (its folder created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, html)
