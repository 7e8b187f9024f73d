"""The code's own rules (docs/architecture.md), checked on the source of every module.

Layers and cycles are import-linter's (``lint-imports``, run by CI); these are the
ones it does not check.
"""

import ast
from pathlib import Path

import pytest

import vidseq

ROOT = Path(vidseq.__file__).parent
NOT_PACKAGE = ("tests", "bench", "docs", "build")
MAX_FUNCTION_LINES = 80  # body, docstring excluded
MAX_MODULE_LINES = 500
MAX_MODULES_PER_FOLDER = 15


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] not in NOT_PACKAGE and not any(p.startswith(".") for p in parts):
            yield path


MODULES = list(_modules())


def _id(path):
    return str(path.relative_to(ROOT))


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("vidseq", *parts)).removesuffix(".__init__")


def test_every_subpackage_is_walked():
    folders = {path.parent.relative_to(ROOT).as_posix() for path in MODULES}
    assert {"cache", "extract/decode", "sequence/config", "sequence/heads"} <= folders


@pytest.mark.parametrize("path", MODULES, ids=_id)
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


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_no_module_imports_the_package_root(path):
    if path == ROOT / "__init__.py":
        return
    tree = ast.parse(path.read_text())
    root_imports = [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Import) and any(a.name == "vidseq" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and node.module == "vidseq")
    ]
    assert not root_imports, f"{_id(path)} imports vidseq itself on lines {root_imports}"


@pytest.mark.parametrize("path", MODULES, ids=_id)
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


@pytest.mark.parametrize("path", MODULES, ids=_id)
def test_no_module_is_longer_than_the_limit(path):
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def test_no_folder_holds_more_than_the_limit_of_modules():
    counts = {}
    for path in MODULES:
        folder = path.parent.relative_to(ROOT).as_posix()
        counts[folder] = counts.get(folder, 0) + 1
    crowded = {folder: n for folder, n in counts.items() if n > MAX_MODULES_PER_FOLDER}
    assert not crowded


def test_nothing_in_the_project_points_outside_the_repository():
    # The workspace's design notes and its shared folder are not in a user's clone.
    markers = ("../" + "shared", "DESIGN" + ".md")
    texts = [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *MODULES]
    outside = [p.name for p in texts if any(m in p.read_text() for m in markers)]
    assert not outside
