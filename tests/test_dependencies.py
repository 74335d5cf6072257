"""Dependencies are declared where they are used and installed from the lock files.

A package imported by the project but only present because another package pulls it in
breaks on the day that package drops it; a lock file behind pyproject.toml installs
something other than what was declared.
"""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("chatproject", "chat", "accounts")
LOCKS = {"requirements.lock": "runtime", "requirements-dev.lock": "dev"}


def _declared(kind: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(line) for line in project["dependencies"]]
    dev = [Requirement(line) for line in project["optional-dependencies"]["dev"]]
    return runtime if kind == "runtime" else runtime + dev


def _pinned(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    return {canonicalize_name(n): v for n, v in re.findall(r"^([\w.-]+)==(\S+)", text, re.M)}


def _top_level_imports(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_pins_every_declared_package_within_its_range(lock: str):
    pinned = _pinned(lock)
    for requirement in _declared(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in {lock}: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside {requirement}: run `make lock`"
        )


def _owners(module: str, distributions: dict[str, list[str]]) -> set[str]:
    """The distribution a module is named for; daphne also installs into `twisted/`."""
    owners = {canonicalize_name(d) for d in distributions.get(module, [module])}
    return owners & {canonicalize_name(module)} or owners


def test_every_package_the_server_imports_is_declared():
    declared = {canonicalize_name(r.name) for r in _declared("runtime")}
    distributions = packages_distributions()
    ours = set(PROJECT_PACKAGES)
    undeclared = {}
    for package in PROJECT_PACKAGES:
        for module in _top_level_imports(ROOT / package) - ours - set(sys.stdlib_module_names):
            names = _owners(module, distributions)
            if not names & declared:
                undeclared[module] = sorted(names)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
