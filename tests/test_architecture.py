"""The code's own rules (docs/architecture.md), checked on the source: layers and cycles are
import-linter's (``lint-imports``, run by CI); these are the ones it does not check."""

import ast
from pathlib import Path

import pytest

import vidseq

ROOT = Path(vidseq.__file__).parent
PACKAGE_DIRS = ("", "cache", "extract", "sequence")
MAX_FUNCTION_LINES = 100  # body, docstring excluded
MAX_SEQUENCE_FILE_LINES = 600


def _modules():
    for folder in PACKAGE_DIRS:
        yield from sorted((ROOT / folder).glob("*.py"))


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("vidseq", *parts)).removesuffix(".__init__")


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_imported_from_another_module(path):
    tree = ast.parse(path.read_text())
    borrowed = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vidseq")
        for alias in node.names
        if alias.name.startswith("_")
        and not alias.name.startswith("__")  # __version__ and other dunders are public
        and node.module != _module_name(path)
    ]
    assert not borrowed, f"{path.name} imports private names: {borrowed}"


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_longer_than_the_limit(path):
    tree = ast.parse(path.read_text())
    too_long = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            if body and body[-1].end_lineno - body[0].lineno + 1 > MAX_FUNCTION_LINES:
                too_long.append(f"{node.name} ({body[-1].end_lineno - body[0].lineno + 1})")
    assert not too_long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_no_sequence_module_is_longer_than_the_limit():
    long_files = {
        p.name: n
        for p in (ROOT / "sequence").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_SEQUENCE_FILE_LINES
    }
    assert not long_files


def test_nothing_in_the_project_points_outside_the_repository():
    # The workspace's design notes and its shared folder are not in a user's clone.
    markers = ("../" + "shared", "DESIGN" + ".md")
    texts = [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *_modules()]
    outside = [p.name for p in texts if any(m in p.read_text() for m in markers)]
    assert not outside
