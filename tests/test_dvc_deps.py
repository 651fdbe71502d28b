"""dvc.yaml's code deps are complete: every module of src/satsr a stage can run is a dep of that stage.

The modules are derived, not listed: from the stage script (the first ``*.py`` of its ``cmd``) the test
follows every ``satsr.*`` import recursively, module-level and lazy (inside functions) alike, plus the
``"satsr.x:func"`` builder references of the architecture registry and ``f"satsr.pkg.{name}"`` dynamic
imports (which may load any module of that package). The ``satsr.cli`` package dispatches every command:
each of its modules is imported (and so a dep of every stage), but of the ``cmd_*`` functions only the
stage's own ``cmd_<command>`` (and what it calls there) count: the png stage does not depend on the
trainer. A dep covers a module when it is the file or a folder above it.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
#: ``"satsr.models.rdn:rdn"``: a builder named in satsr.config.ARCHITECTURES ...
_REF = re.compile(r"^(satsr(?:\.\w+)+):\w+$")
#: ... and imported (by importlib) where the registry resolves them.
REGISTRY, REGISTRY_TABLE = "satsr.models.registry", SRC / "satsr" / "config" / "training.py"
#: The package of the `satsr` command: its ``cmd_*`` functions are followed only for the stage's own command.
CLI, COMMAND_PREFIX = "satsr.cli", "cmd_"


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


@functools.cache
def module_path(name: str) -> Path | None:
    """src/satsr/a/b.py or src/satsr/a/b/__init__.py of ``satsr.a.b``, if it exists."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _with_parents(name: str) -> Iterator[str]:
    """Importing ``satsr.a.b`` runs satsr/__init__.py and satsr/a/__init__.py first."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _package_of(path: Path) -> str:
    if SRC not in path.parents:
        return ""
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


#: A request for a whole module: it was imported as a module object, so any of its names may be used.
ALL = None
Request = frozenset[str] | None


def _registry_builders() -> dict[str, set[str]]:
    """Module -> functions named by the ``"module:function"`` strings of satsr.config.ARCHITECTURES."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(_tree(REGISTRY_TABLE)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := _REF.match(node.value)):
            out.setdefault(m.group(1), set()).add(node.value.rpartition(":")[2])
    return out


def _reached_code(tree: ast.Module, names: Request, skip_prefix: str | None) -> list[ast.AST]:
    """Module-level statements (always run on import) plus the top-level functions and classes reachable
    by name from them and from ``names`` (all of them for ``ALL``); ``skip_prefix`` functions (cli's other
    ``cmd_*``) are only reached when requested."""
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    code: list[ast.AST] = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                      ast.ClassDef))]
    todo = list(defs) if names is ALL else [n for n in names if n in defs]
    for node in code:
        todo.extend(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs)
    reached: set[str] = set()
    requested = set(defs) if names is ALL else set(names)
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        for n in ast.walk(defs[name]):
            if isinstance(n, ast.Name) and n.id in defs and n.id not in reached:
                if skip_prefix and n.id.startswith(skip_prefix) and n.id not in requested:
                    continue
                todo.append(n.id)
    return code + [defs[n] for n in reached]


@functools.cache
def imports_in(path: Path, names: Request = ALL, skip_prefix: str | None = None) -> dict[str, Request]:
    """The satsr modules that the code of ``path`` reachable from ``names`` may import, each with the
    names taken from it (``ALL`` when imported as a module)."""
    found: dict[str, Request] = {}

    def add(module: str, taken: Request) -> None:
        if not module_path(module):
            return
        for parent in _with_parents(module.rpartition(".")[0]) if "." in module else ():
            found.setdefault(parent, frozenset())  # importing a.b runs a/__init__.py first
        old = found.get(module, frozenset())
        found[module] = ALL if ALL in (old, taken) else old | taken

    tree = _tree(path)
    package = _package_of(path)
    for root in _reached_code(tree, names, skip_prefix):
        for node in ast.walk(root):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "satsr":
                        add(alias.name, ALL)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.split(".")[0] != "satsr":
                    continue
                plain = frozenset(a.name for a in node.names if not module_path(f"{base}.{a.name}"))
                add(base, plain)
                for alias in node.names:
                    if module_path(f"{base}.{alias.name}"):
                        add(f"{base}.{alias.name}", ALL)
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                prefix = str(node.values[0].value)  # importlib.import_module(f"satsr.data.sources.{name}")
                if prefix.startswith("satsr.") and prefix.endswith(".") and module_path(prefix[:-1]):
                    pkg = SRC.joinpath(*prefix[:-1].split("."))
                    for p in [*pkg.glob("*.py"), *pkg.glob("*/__init__.py")]:  # a module or a package each
                        add(module_name(p), ALL)
    if package and module_name(path) == REGISTRY:
        for module, funcs in _registry_builders().items():
            add(module, frozenset(funcs))
    return found


def _in_cli(module: str) -> bool:
    return module == CLI or module.startswith(f"{CLI}.")


def _only_own_command(module: str, taken: Request, command: str) -> frozenset[str]:
    """The names of a satsr.cli module that stage ``command`` may run: all of them (or those taken) but
    the other commands' ``cmd_*`` functions, which the parser imports but never calls for this stage."""
    if taken is ALL:
        body = _tree(module_path(module)).body
        taken = frozenset(n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                  ast.ClassDef)))
    return frozenset(n for n in taken if not n.startswith(COMMAND_PREFIX) or n == f"{COMMAND_PREFIX}{command}")


def _command_of(script: Path) -> str | None:
    """The satsr subcommand a stage script runs: ``main(["png", *sys.argv[1:]])`` -> ``png``."""
    for node in ast.walk(_tree(script)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "main" and node.args
                and isinstance(node.args[0], ast.List) and node.args[0].elts
                and isinstance(node.args[0].elts[0], ast.Constant)):
            return str(node.args[0].elts[0].value)
    return None


@functools.cache
def stage_modules(script: Path) -> dict[str, str]:
    """Every satsr module the stage script may run -> the module that imports it (for messages)."""
    command = _command_of(script)
    requested: dict[str, Request] = {}
    via: dict[str, str] = {}
    todo: list[tuple[str, Request, str]] = [(m, t, script.name) for m, t in imports_in(script).items()]
    while todo:
        module, taken, parent = todo.pop()
        if _in_cli(module) and command:
            taken = _only_own_command(module, taken, command)  # only this stage's command (see module doc)
        old = requested.get(module, frozenset())
        new = ALL if ALL in (old, taken) else old | taken
        if module in requested and new == old:
            continue
        requested[module] = new
        via.setdefault(module, parent)
        skip = COMMAND_PREFIX if _in_cli(module) else None
        todo.extend((m, t, module) for m, t in imports_in(module_path(module), new, skip).items())
    return via


def has_code(module: str) -> bool:
    """False for a module that is only a docstring (a bare package ``__init__.py``): it cannot change
    what a stage computes, so it need not be a dep."""
    body = _tree(module_path(module)).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def required_deps(name: str) -> dict[str, str]:
    """Stage ``name``'s module files that must be deps (repo-relative path -> importing module)."""
    via = stage_modules(_script(STAGES[name]))
    return {str(module_path(m).relative_to(REPO)): parent for m, parent in via.items() if has_code(m)}


def _stages() -> Iterator[tuple[str, dict]]:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        yield name, stage.get("do", stage)


STAGES = dict(_stages())


def _script(stage: dict) -> Path:
    return REPO / next(tok for tok in stage["cmd"].split() if tok.endswith(".py"))


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_module_it_imports(name):
    stage = STAGES[name]
    script, deps = _script(stage), [str(d) for d in stage.get("deps", [])]
    assert str(script.relative_to(REPO)) in deps, f"stage {name!r}: its script {script.name} is not a dep"
    missing = [f"{path} (imported by {parent})" for path, parent in sorted(required_deps(name).items())
               if not _covered(REPO / path, deps)]
    assert not missing, f"dvc.yaml stage {name!r} misses deps: " + "; ".join(missing)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_exist_and_are_used(name):
    """A listed src/ dep that no longer exists or that the stage never imports reruns it for nothing."""
    stage = STAGES[name]
    used = [module_path(m) for m in stage_modules(_script(stage))]
    for dep in (str(d) for d in stage.get("deps", [])):
        if not dep.startswith("src/"):
            continue
        target = REPO / dep
        assert target.exists(), f"stage {name!r}: dep {dep} does not exist"
        assert any(p == target or target in p.parents for p in used), \
            f"stage {name!r}: dep {dep} is listed but the stage imports nothing from it"


def test_the_derivation_sees_lazy_registry_and_dynamic_imports():
    """Guards the analysis itself: lazy imports inside functions, the registry's builder strings and
    the providers imported by f-string are followed; cli's other commands are not."""
    finetune = stage_modules(REPO / "stages" / "finetune.py")
    assert any(m.startswith("satsr.train.") for m in finetune)  # lazy, inside cli's training command
    assert {"satsr.models.rdn", "satsr.models.srgan", "satsr.tracking"} <= set(finetune)  # registry strings
    source = stage_modules(REPO / "stages" / "source.py")
    assert {"satsr.data.sources.demo", "satsr.data.sources.gee", "satsr.data.sources.folder"} <= set(source)
    png = stage_modules(REPO / "stages" / "png.py")
    assert {"satsr.data.split", "satsr.data.geotiff", "satsr.data.radiometry", "satsr.data.manifest"} <= set(png)
    assert not any(m.startswith(("satsr.train", "satsr.models", "satsr.tune")) for m in png)
    # every module of the cli package runs on import, so every stage depends on each of them
    cli_modules = {module_name(p) for p in SRC.joinpath(*CLI.split(".")).glob("*.py") if p.name != "__main__.py"}
    assert {CLI, f"{CLI}.parser", f"{CLI}.commands"} <= cli_modules <= set(png)
