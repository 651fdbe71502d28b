"""docker/compose.yaml read as YAML (no Docker engine): services, pins, healthchecks, GPU, secrets,
and MLflow's login (the basic-auth app; tests/test_mlflow_auth.py runs it for real).

Variables are read the way compose would with nothing set in docker/.env: ``${VAR:-default}`` is
its default, ``${VAR:?message}`` is required (no default, so nothing secret is committed).
tests/test_services_e2e.py runs the ``mlflow`` service's command natively against PostgreSQL.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
SECRETISH = re.compile(r"KEY|SECRET|PASSW|TOKEN|CREDENTIAL|PRIVATE", re.IGNORECASE)
VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
EXPECTED_SERVICES = {"postgres", "mlflow", "trainer", "optuna-dashboard"}


def default(value) -> str:
    """The value with every ``${VAR:-default}`` at its default and required variables empty."""
    return VAR.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", str(value))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def command_list(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return cmd if isinstance(cmd, list) else cmd.split()


def test_the_stack_has_its_services(services):
    assert set(services) == EXPECTED_SERVICES
    assert services["optuna-dashboard"].get("profiles"), "the dashboard is optional (a profile)"
    for name in ("postgres", "mlflow", "trainer"):
        assert not services[name].get("profiles"), f"{name} must run without a profile"


def test_images_are_pinned(services):
    for name, service in services.items():
        image = default(service.get("image", ""))
        assert image, f"{name}: name the image (built ones too, so they are tagged, not `latest`)"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} is not pinned"
        if "build" not in service:  # pulled from a registry: a full version
            assert re.search(r"\d+\.\d+", tag), f"{name}: pin a full version, not {image}"


def test_built_images_use_the_dockerfile_stages(services):
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", (DOCKER / "Dockerfile").read_text(),
                            re.IGNORECASE | re.MULTILINE))
    for name, service in services.items():
        build = service.get("build")
        if not build:
            continue
        assert (COMPOSE.parent / build["context"]).resolve() == REPO, f"{name}: build context = repo root"
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
        assert build["target"] in stages, f"{name}: target {build['target']} is not a stage of the Dockerfile"
        args = {k: default(v) for k, v in (build.get("args") or {}).items()}
        assert args.get("SATSR_UID") and args["SATSR_UID"] != "0", f"{name}: build as the host user, not root"
    assert services["trainer"]["build"]["target"] == "trainer"
    assert services["mlflow"]["build"]["target"] == "services"


def test_healthchecks(services):
    for name in ("postgres", "mlflow", "optuna-dashboard"):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert check.get("interval") and check.get("retries"), f"{name}: interval and retries"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_depends_on_waits_for_healthy_services(services):
    deps = {}
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert isinstance(spec, dict) and spec.get("condition") == "service_healthy", \
                f"{name} -> {dep}: use `condition: service_healthy`"
            assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"
            deps.setdefault(name, set()).add(dep)
    assert deps["mlflow"] == {"postgres"}
    assert deps["trainer"] >= {"mlflow", "postgres"}
    assert "postgres" in deps["optuna-dashboard"]


def test_trainer_reserves_the_gpu(services):
    devices = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def test_published_ports_bind_to_localhost_by_default(services):
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip = default(port.get("host_ip", ""))
            else:
                parts = default(port).split(":")
                assert len(parts) == 3, f"{name}: {port} publishes on every interface; give an address"
                host_ip = parts[0]
            assert host_ip == "127.0.0.1", f"{name}: {port} binds to {host_ip or 'all interfaces'} by default"
            published += 1
    assert published >= 2
    assert default(services["mlflow"]["ports"][0]).endswith(":5000:5000")


def test_no_secret_is_written_in_the_file(services, compose):
    text = COMPOSE.read_text()
    assert not re.search(r"\$\{\w*(PASSW|SECRET|TOKEN)\w*:?-", text, re.IGNORECASE), \
        "a password variable must not have a default (use ${VAR:?message})"
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRETISH.search(key):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}|/run/secrets/\w+", value), \
                    f"{name}: {key}={value!r} must be a required variable or a /run/secrets path"
            for m in re.finditer(r"://([^/@\s:]+):([^@\s]+)@", value):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", m.group(2)), f"{name}: {key} holds a literal password"
    assert "password" not in yaml.safe_dump(compose.get("x-build", {})).lower()


def test_the_earth_engine_key_is_a_compose_secret(services, compose):
    trainer = services["trainer"]
    assert "ee_key" in trainer.get("secrets", [])
    assert environment(trainer)["EE_SERVICE_ACCOUNT_KEY_FILE"] == "/run/secrets/ee_key"
    secret = compose["secrets"]["ee_key"]
    assert set(secret) == {"file"} and default(secret["file"]) == "./ee-key.none", \
        "a host file; the empty docker/ee-key.none (no key) unless EE_KEY_FILE is set"
    placeholder = DOCKER / "ee-key.none"
    assert placeholder.is_file() and placeholder.stat().st_size == 0, "the placeholder must stay empty"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            assert "key" not in str(volume).lower(), f"{name}: mount keys as secrets, not volumes"


def test_mlflow_server_settings(services):
    mlflow = services["mlflow"]
    cmd = command_list(mlflow)
    env = environment(mlflow)
    assert cmd[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in cmd
    opts = dict(a.split("=", 1) for a in cmd if a.startswith("--") and "=" in a)
    assert opts["--workers"] == "1" and opts["--host"] == "0.0.0.0" and opts["--port"] == "5000"
    targets = {str(v).split(":")[1] for v in mlflow["volumes"]}
    assert opts["--artifacts-destination"] in targets, "the artifacts live on a volume"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    backend = env["MLFLOW_BACKEND_STORE_URI"]
    assert backend.startswith("postgresql+psycopg2://") and "@postgres:5432/" in backend
    assert backend.rsplit("/", 1)[1] == environment(services["postgres"])["POSTGRES_DB"]
    assert "mlflow:*" in default(env["MLFLOW_SERVER_ALLOWED_HOSTS"]).split(",")


def test_trainer_settings(services):
    trainer = services["trainer"]
    env = environment(trainer)
    assert default(env["MLFLOW_TRACKING_URI"]) == "http://mlflow:5000"
    storage = env["SATSR_OPTUNA_STORAGE"]
    assert storage.startswith("postgresql+psycopg2://") and default(storage).endswith("@postgres:5432/optuna")
    init_sql = "\n".join(p.read_text() for p in (DOCKER / "postgres").glob("*.sql"))
    assert re.search(r"CREATE DATABASE optuna", init_sql, re.IGNORECASE), "the optuna database is created"
    volumes = [default(v) for v in trainer["volumes"]]
    assert "..:/workspace" in volumes, "the checkout is mounted at /workspace"
    assert any(v.endswith(":/workspace/.dvc/cache") for v in volumes), "the DVC cache is on a volume"
    assert default(environment(services["optuna-dashboard"])["SATSR_OPTUNA_STORAGE"]) == default(storage)


def _config_file(compose: dict, service: dict, target: str) -> Path:
    """The host file behind the compose config mounted at ``target`` in ``service``."""
    for entry in service.get("configs") or []:
        if isinstance(entry, dict) and entry.get("target") == target:
            return (COMPOSE.parent / compose["configs"][entry["source"]]["file"]).resolve()
    raise AssertionError(f"no compose config is mounted at {target}")


def test_mlflow_runs_the_basic_auth_app(services, compose):
    """Item 16b of issue 13: the server demands a login (MLflow's basic-auth app)."""
    mlflow = services["mlflow"]
    cmd = command_list(mlflow)
    env = environment(mlflow)
    assert "--app-name=basic-auth" in cmd, "the server must run MLflow's basic-auth app"
    ini_path = _config_file(compose, mlflow, env["MLFLOW_AUTH_CONFIG_PATH"])
    assert ini_path == DOCKER / "mlflow-auth.ini" and ini_path.is_file()
    ini = configparser.ConfigParser()
    ini.read_string(ini_path.read_text())
    auth = ini["mlflow"]
    assert "admin_password" not in auth, "the admin password comes from docker/.env, never from a file"
    assert auth["default_permission"] in ("READ", "NO_PERMISSIONS"), "a login must not grant writes by default"
    assert auth["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"
    # The user store lives in MLflow's own PostgreSQL database; the URI names no host, user or
    # password (libpq's PG* variables of the service give them).
    db = auth["database_uri"]
    backend = env["MLFLOW_BACKEND_STORE_URI"]
    assert db.startswith("postgresql+psycopg2:///") and "@" not in db
    assert db.rsplit("/", 1)[1] == backend.rsplit("/", 1)[1] == environment(services["postgres"])["POSTGRES_DB"]
    assert env["PGHOST"] == "postgres" and env["PGPORT"] == "5432"
    assert default(env["PGUSER"]) == default(environment(services["postgres"])["POSTGRES_USER"])
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]*\}", env["PGPASSWORD"])
    # The admin account and the Flask (CSRF) key: variables with no default, never literals.
    for key, var in (("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_ADMIN_PASSWORD"),
                     ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_FLASK_SECRET_KEY")):
        assert re.fullmatch(rf"\$\{{{var}(:\?[^}}]*)?\}}", env[key]), f"{key}={env[key]!r}"
    assert default(env["MLFLOW_AUTH_ADMIN_USERNAME"]) == "admin"
    # no anonymous probe needs a login: /health is open on a basic-auth server
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])


def test_trainers_log_in_with_mlflows_variables(services):
    env = environment(services["trainer"])
    assert default(env["MLFLOW_TRACKING_USERNAME"]) == "trainer"
    assert re.fullmatch(r"\$\{MLFLOW_TRACKING_PASSWORD:\?[^}]*\}", env["MLFLOW_TRACKING_PASSWORD"]), \
        "the trainers' password is required and has no default"
    assert "@" not in default(env["MLFLOW_TRACKING_URI"]), "no login inside the tracking URI"


def test_no_password_literal_anywhere(compose):
    """Neither the compose file, the auth config nor the .env template holds a password."""
    texts = {COMPOSE.name: COMPOSE.read_text(), "mlflow-auth.ini": (DOCKER / "mlflow-auth.ini").read_text()}
    for name, text in texts.items():
        for line in text.splitlines():
            # what is left once every ${VAR...} interpolation (the only allowed source) is removed
            code = VAR.sub("", line.split("#", 1)[0])
            m = re.search(r"(passw\w*|secret\w*|token)\s*[:=]\s*(\S+)", code, re.IGNORECASE)
            assert not m, f"{name}: {line.strip()!r} looks like a literal secret"
            assert not re.search(r"://[^/\s:@]*:[^/\s@]+@", code), f"{name}: {line.strip()!r} has a login in a URI"
    example = (DOCKER / ".env.example").read_text()
    for var in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SECRET_KEY", "MLFLOW_TRACKING_PASSWORD"):
        assert re.search(rf"^{var}=\s*$", example, re.MULTILINE), f"{var} must be empty in .env.example"
    user_script = DOCKER / "mlflow-user.sh"
    assert user_script.is_file() and os.access(user_script, os.X_OK), "docker/mlflow-user.sh must be executable"


def test_named_volumes_are_declared(services, compose):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = default(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
    assert "/var/lib/postgresql/data" in {str(v).split(":")[1] for v in services["postgres"]["volumes"]}


def test_every_variable_is_documented_in_env_example():
    example = (DOCKER / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    used = {m.group(1) for m in VAR.finditer(COMPOSE.read_text())}
    assert used - documented == set(), f"add to docker/.env.example: {sorted(used - documented)}"
    assert re.search(r"^POSTGRES_PASSWORD=\s*$", example, re.MULTILINE), "the example holds no password"


def test_local_settings_are_git_ignored():
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    for path in ("docker/.env", "docker/secrets/ee-key.json"):
        proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False, timeout=30)
        assert proc.returncode == 0, f"{path} is not git-ignored"
    proc = subprocess.run(["git", "check-ignore", "-q", "docker/.env.example"], cwd=REPO, check=False, timeout=30)
    assert proc.returncode == 1, "docker/.env.example must be committed"


def test_docker_compose_accepts_the_file(tmp_path):
    """`docker compose config` where the compose plugin exists (it needs no engine)."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        check=False, timeout=30).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here")
    env_file = tmp_path / "test.env"
    env_file.write_text("POSTGRES_PASSWORD=not-a-real-password\nMLFLOW_TRACKING_PASSWORD=not-a-real-password\n"
                        "MLFLOW_ADMIN_PASSWORD=not-a-real-password\nMLFLOW_FLASK_SECRET_KEY=not-a-real-key\n")
    proc = subprocess.run([docker, "compose", "-f", str(COMPOSE), "--env-file", str(env_file), "--profile",
                           "tuning", "config", "--quiet"], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
