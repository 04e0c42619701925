"""The type stubs describe the compiled module exactly, and the public API
is documented.

The name checks below always run; when mypy is installed (the test script
installs it) mypy's stubtest also compares every signature, default and
type of the stubs with the module at run time, and type-checks the package.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

import evsock
import evsock._evsock as core
import evsock.asyncio
import evsock.session

PKG_DIR = pathlib.Path(evsock.__file__).resolve().parent
STUB = PKG_DIR / "_evsock.pyi"


def stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def stub_names(tree: ast.Module) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
    return out


def class_members(node: ast.ClassDef) -> set[str]:
    names = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            names.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    return names


def runtime_public(mod) -> set[str]:
    return {n for n in dir(mod) if not n.startswith("_")}


def test_package_ships_stubs_and_py_typed():
    assert STUB.is_file()
    assert (PKG_DIR / "py.typed").is_file()


def test_stub_all_matches_the_module():
    tree = stub_tree()
    declared = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            declared = ast.literal_eval(node.value)
    assert declared is not None, "_evsock.pyi has no __all__"
    assert sorted(declared) == sorted(core.__all__)


def test_every_public_name_of_the_module_is_in_the_stub_and_back():
    names = stub_names(stub_tree())
    public_stub = {n for n in names if not n.startswith("_")}
    assert runtime_public(core) - public_stub == set(), "in the module but not in _evsock.pyi"
    assert public_stub - runtime_public(core) == set(), "in _evsock.pyi but not in the module"
    assert "__version__" in names


def test_every_class_member_is_in_the_stub_and_back():
    names = stub_names(stub_tree())
    problems = []
    for name in sorted(runtime_public(core)):
        obj = getattr(core, name)
        if not inspect.isclass(obj):
            continue
        node = names[name]
        assert isinstance(node, ast.ClassDef), name
        stub = {m for m in class_members(node) if not m.startswith("_")}
        # Members defined on the class itself, or inherited from another
        # class of this module (the stub declares those on the base).
        rt = set()
        for klass in obj.__mro__:
            if klass.__module__.startswith("evsock") and klass is not BaseException:
                rt |= {m for m in vars(klass) if not m.startswith("_")}
        if issubclass(obj, BaseException):
            rt -= {"args", "with_traceback", "add_note"}
        for klass in obj.__mro__[1:]:
            n = klass.__name__
            if klass.__module__.startswith("evsock") and n in names:
                stub |= {m for m in class_members(names[n]) if not m.startswith("_")}
        if rt - stub:
            problems.append(f"{name}: not in stub: {sorted(rt - stub)}")
        if stub - rt and not issubclass(obj, BaseException):
            problems.append(f"{name}: only in stub: {sorted(stub - rt)}")
    assert not problems, "\n".join(problems)


def test_reexports_resolve():
    for mod in (evsock, evsock.session, evsock.asyncio):
        for n in mod.__all__:
            assert hasattr(mod, n), f"{mod.__name__}.{n}"
    # evsock.session's short names are the module's Session* classes.
    assert evsock.session.Send is core.SessionSend
    assert evsock.session.Error is core.SessionErrorEvent
    assert evsock.session.Closed is core.SessionClosed


def test_public_api_has_docstrings():
    missing = []
    for mod in (evsock, evsock.session, evsock.asyncio):
        if not (mod.__doc__ or "").strip():
            missing.append(mod.__name__)
        for n in mod.__all__:
            obj = getattr(mod, n)
            if isinstance(obj, str):
                continue
            if not (obj.__doc__ or "").strip():
                missing.append(f"{mod.__name__}.{n}")
            if not inspect.isclass(obj):
                continue
            for m, v in vars(obj).items():
                # ws_* is the asyncio hosts' internal sink interface.
                if m.startswith(("_", "ws_")):
                    continue
                if inspect.isroutine(v) or isinstance(v, (staticmethod, classmethod)):
                    doc = getattr(v, "__doc__", None)
                    if isinstance(v, (staticmethod, classmethod)):
                        doc = v.__func__.__doc__
                    if not (doc or "").strip():
                        missing.append(f"{mod.__name__}.{n}.{m}")
    assert not missing, missing


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_stubtest_agrees_with_the_runtime():
    # stubtest imports evsock and type-checks its sources and stubs, then
    # compares every name, signature, default and base with the live module.
    # Run outside the source tree so mypy sees one copy of the package.
    env = dict(os.environ, MYPY_CACHE_DIR=os.path.join(tempfile.gettempdir(), "evsock-mypy-cache"))
    with tempfile.TemporaryDirectory() as cwd:
        r = subprocess.run(
            [sys.executable, "-m", "mypy.stubtest", "evsock"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout
