"""docs/architecture.md matches the code: every module file and `module.name` it mentions exists."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
# Where a bare `name.py` or `name.attr` may live: the library, the Airflow plugins folder, the DAGs.
CODE_DIRS = (REPO / "plugins" / "newsdedup", REPO / "plugins", REPO / "dags")
FILE_RE = re.compile(r"(?<![\w.-])((?:[\w.-]+/)*)(\w+)\.py\b")
DOTTED_RE = re.compile(r"(?<![\w./-])(?:newsdedup\.)?([a-z_]\w*)((?:\.\w+)+)")
LINK_RE = re.compile(r"\]\(([^)#\s]+)")
NOT_ATTRIBUTES = frozenset({"py", "md", "sql", "yaml", "yml", "json", "txt", "sh", "html"})
MAX_LINES = 200


@cache
def modules() -> dict[str, Path]:
    """Module name -> file, first hit in CODE_DIRS order."""
    found: dict[str, Path] = {}
    for folder in CODE_DIRS:
        for path in sorted(folder.glob("*.py")):
            found.setdefault(path.stem, path)
    return found


def _defined(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a module or class body defines (functions, classes, assignments, annotated fields)."""
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            names |= {t.id: node for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.If | ast.Try):
            names |= _defined(node.body) | _defined(node.orelse)
    return names


@cache
def _module_names(path: Path) -> dict[str, ast.AST]:
    """Top-level names of a module file."""
    return _defined(ast.parse(path.read_text(encoding="utf-8")).body)


def _missing_attribute(module: str, chain: list[str]) -> str | None:
    """The first name of `module.a.b` that does not exist, or None."""
    names = _module_names(modules()[module])
    for depth, attr in enumerate(chain):
        node = names.get(attr)
        if node is None:
            return ".".join([module, *chain[: depth + 1]])
        names = _defined(node.body) if isinstance(node, ast.ClassDef) else {}
    return None


def file_problems(text: str) -> list[str]:
    """Every `x.py` (bare: a module in CODE_DIRS; with a path: relative to the repository) that is not there."""
    problems = []
    for match in FILE_RE.finditer(text):
        folder, stem = match.groups()
        exists = (REPO / folder / f"{stem}.py").is_file() if folder else stem in modules()
        if not exists:
            problems.append(f"no file {match.group(0)}")
    return problems


def reference_problems(text: str) -> list[str]:
    """Every `module.name` (module: a file in CODE_DIRS) whose name the module does not define."""
    problems = []
    for match in DOTTED_RE.finditer(text):
        head, tail = match.group(1), match.group(2).split(".")[1:]
        if head not in modules() or tail[0] in NOT_ATTRIBUTES:
            continue
        missing = _missing_attribute(head, tail)
        if missing:
            problems.append(f"{match.group(0)}: {missing} is not defined in {modules()[head].relative_to(REPO)}")
    return problems


def test_every_module_file_named_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = {stem for _, stem in FILE_RE.findall(text)} | {m.group(1) for m in DOTTED_RE.finditer(text)}
    assert len(named & modules().keys()) >= 30  # the page names the modules: few hits mean a regex broke
    assert file_problems(text) == []


def test_every_module_function_named_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    checked = [m for m in DOTTED_RE.finditer(text) if m.group(1) in modules()]
    assert len(checked) >= 50
    assert reference_problems(text) == []


def test_the_check_catches_a_renamed_module_or_function() -> None:
    text = "`fetch.py` became `fetcher.py`; `pipeline.run_once` and `pipeline.run_twice`; `dags/nope.py`"
    assert file_problems(text) == ["no file fetcher.py", "no file dags/nope.py"]
    assert reference_problems(text) == [
        "pipeline.run_twice: pipeline.run_twice is not defined in plugins/newsdedup/pipeline.py"
    ]
    assert reference_problems("`fetch.Fetcher.get` and `fetch.Fetcher.gets`") == [
        "fetch.Fetcher.gets: fetch.Fetcher.gets is not defined in plugins/newsdedup/fetch.py"
    ]


def test_links_resolve_and_the_page_stays_one_page() -> None:
    text = DOC.read_text(encoding="utf-8")
    links = LINK_RE.findall(text)
    assert "schema.md" in links
    assert [link for link in links if not (DOC.parent / link).exists()] == []
    assert len(text.splitlines()) <= MAX_LINES
