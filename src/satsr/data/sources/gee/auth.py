"""Where Earth Engine credentials come from: a service-account key file, or whatever ``ee.Initialize``
finds itself (``earthengine authenticate``, Application Default Credentials, the metadata server of
Colab / GCE / Cloud Run). Only paths and the account e-mail are ever kept; never key material."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from satsr.config import GeeParams
from satsr.data.sources.gee.common import GeeAuthError

#: Service-account key files, in order of precedence; they win over params.yaml.
ENV_KEY_FILES = ("EE_SERVICE_ACCOUNT_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS")
ENV_PROJECT = "EE_PROJECT"

AUTH_HELP = (
    "How to authenticate Earth Engine for satsr (source.provider=gee):\n"
    "  * service account: export EE_SERVICE_ACCOUNT_KEY_FILE=/path/to/key.json "
    "(or GOOGLE_APPLICATION_CREDENTIALS, or the key file's *path* in source.gee.credentials_file); "
    "the account must be registered for Earth Engine;\n"
    "  * or user credentials: run `earthengine authenticate` once "
    "(stores ~/.config/earthengine/credentials), or `gcloud auth application-default login`;\n"
    "  * on Colab, GCE or Cloud Run the environment's own credentials are used;\n"
    "  * and a Cloud project with the Earth Engine API enabled: export EE_PROJECT=my-project "
    "(or source.gee.project); a service account defaults to its own project.\n"
    "Check the setup with `satsr ee-check`. Without an account, use the offline demo: source.provider=demo."
)


@dataclass(frozen=True)
class EeAuth:
    """Where the credentials are, never what they are: the key's contents stay in its file."""

    project: str | None  # None: ee.Initialize takes it from the credentials
    key_file: Path | None = None  # service-account JSON key; None = found by ee.Initialize
    email: str | None = None

    def describe(self) -> str:
        """Safe for logs: account kind, email, key *path* and project only."""
        project = f"project {self.project}" if self.project else "project from the credentials"
        if self.key_file is not None:
            return f"service account {self.email} (key file {self.key_file}), {project}"
        return f"user / application-default credentials, {project}"


def resolve_auth(gee: GeeParams, env: Mapping[str, str] | None = None) -> EeAuth:
    """Credentials and project from env vars (first) or params.

    An explicitly named key file is checked at once (exists, is a service-account key), so a typo
    fails before anything starts. Without one, nothing is rejected up front: ``ee.Initialize``
    looks for user credentials, Application Default Credentials and the metadata server itself,
    and its failure is reported with :data:`AUTH_HELP`. Only the key's ``type`` and
    ``client_email`` are read; no part of it is kept, logged or repeated in a message.
    """
    env = os.environ if env is None else env
    source, key_path = next(((name, env[name]) for name in ENV_KEY_FILES if env.get(name)), (None, None))
    if key_path is None and gee.credentials_file:
        source, key_path = "source.gee.credentials_file", gee.credentials_file
    if key_path is not None and key_path.lstrip().startswith("{"):
        raise GeeAuthError(f"{source} must be the *path* of a key file, not the key itself.\n{AUTH_HELP}")
    project = env.get(ENV_PROJECT) or gee.project or None
    if key_path is None:
        return EeAuth(project=project)

    key_file = Path(key_path).expanduser()
    if not key_file.is_file():
        raise GeeAuthError(f"{source}: key file {key_file} does not exist.\n{AUTH_HELP}")
    try:
        info = json.loads(key_file.read_text())
    except (OSError, ValueError):
        raise GeeAuthError(f"{source}: {key_file} is not a readable JSON key file.\n{AUTH_HELP}") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account" and info.get("client_email") and info.get("private_key"):
        return EeAuth(project=project, key_file=key_file, email=str(info["client_email"]))
    if source == "GOOGLE_APPLICATION_CREDENTIALS" and kind in ("authorized_user", "external_account",
                                                               "impersonated_service_account"):
        return EeAuth(project=project)  # application-default credentials: ee.Initialize reads them
    raise GeeAuthError(
        f"{source}: {key_file} is not a service-account key (needs type 'service_account', "
        f"'client_email' and 'private_key').\n{AUTH_HELP}"
    )
