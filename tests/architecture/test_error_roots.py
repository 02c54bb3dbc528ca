"""One exception root per boundary: every error the gateway defines derives from the
daemon's root (`EdgeError`), the pure domain's (`DomainError`) or the wire contract's
(`Malformed`, shared with the HQ service), and only the supervisors catch `Exception`
without raising it again."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import edge
from edge.contract.payloads import Malformed
from edge.domain.errors import DomainError, PolicyViolation
from edge.errors import EdgeError, StorageError

EDGE = Path(__file__).resolve().parents[2] / "edge"

# Where a failure of unknown kind is caught on purpose, each for one reason.
SUPERVISORS = {
    ("edge/supervise.py", "supervised"),  # every long-lived loop: logged, counted, restarted
    ("edge/bus.py", "publish"),  # one failing subscriber must not starve the others
    ("edge/api/problems.py", "problem_middleware"),  # no plain-text 500: internal-error
    ("edge/ledger/writer.py", "_run_batch"),  # the job fails alone; its caller gets the error
    ("edge/devices/worker_thread.py", "main"),  # handed to the owning task, which raises it
    ("edge/devices/keyboard_scanners.py", "_serve"),  # one keyboard must not stop the rest
    ("edge/hq/service.py", "_settle_one"),  # a processor/ERP plug-in bug must not stop HQ
    ("edge/mqtt/session.py", "_message"),  # one bad message must not stop the read loop
}


def edge_exceptions() -> set[type[BaseException]]:
    """Every exception class defined in the package (each module imported once)."""
    for info in pkgutil.walk_packages(edge.__path__, "edge."):
        if not info.name.endswith(".__main__"):  # that one runs the command line
            importlib.import_module(info.name)
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [BaseException]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                todo.append(sub)
                found.add(sub)
    return {cls for cls in found if cls.__module__.split(".")[0] == "edge"}


def catch_alls(source: str) -> list[tuple[int, str]]:
    """`except Exception`/`BaseException`/bare `except` that does not raise again, with the
    name of the innermost function it is in."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.ExceptHandler) and _swallows_anything(child):
                found.append((child.lineno, func))
            visit(child, func)

    visit(ast.parse(source), "<module>")
    return found


def _swallows_anything(handler: ast.ExceptHandler) -> bool:
    caught = list(ast.walk(handler.type)) if handler.type else []
    names = {n.id for n in caught if isinstance(n, ast.Name)} if caught else {"Exception"}
    broad = bool({"Exception", "BaseException"} & names)
    reraises = any(isinstance(n, ast.Raise) and n.exc is None for n in ast.walk(handler))
    return broad and not reraises


def test_every_error_has_one_of_the_three_roots() -> None:
    classes = edge_exceptions()
    assert {PolicyViolation, StorageError, Malformed} <= classes
    strays = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in classes
        if not issubclass(cls, EdgeError | DomainError | Malformed)
    )
    assert strays == []
    assert not issubclass(DomainError, EdgeError), "the domain imports nothing of the daemon"
    assert not issubclass(Malformed, EdgeError), "the contract imports nothing of either program"


def test_the_checker_finds_a_catch_all_that_swallows() -> None:
    source = (
        "def f():\n    try: g()\n    except Exception: log()\n"
        "def h():\n    try: g()\n    except BaseException:\n        undo()\n        raise\n"
    )
    assert catch_alls(source) == [(3, "f")]


def test_only_the_supervisors_catch_everything() -> None:
    found = {
        (str(path.relative_to(EDGE.parent)), name)
        for path in sorted(EDGE.rglob("*.py"))
        for _, name in catch_alls(path.read_text(encoding="utf-8"))
    }
    assert found <= SUPERVISORS, found - SUPERVISORS
