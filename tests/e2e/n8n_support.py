"""A real n8n on 127.0.0.1 for the end-to-end tests, one per version.

n8n comes from scripts/install-n8n.sh, cached outside the repository; each
version has a launcher (`n8n-launch`) that runs it with the Node it needs.
`N8N_VERSIONS` (default "2.8.4 2.41.1", spaces or commas) lists the versions
the tests run against: the `n8n` fixture is parametrized by it, and a version
that is not installed skips (fails under CI=true).

Each test session starts an empty n8n with a user folder of its own, waits for
the log line saying the editor is accessible, sets up its owner and an API key
the way a person would (`POST /rest/owner/setup`, `/rest/login`,
`/rest/api-keys`), and then runs `manage.py n8n_setup`, which creates the
credentials (the model's pointing at the stand-in model, tests/e2e/model_standin.py),
installs, links, activates and probes the workflows.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command
from django.test import override_settings

from n8n.api import N8nApi
from n8n.bootstrap import bootstrap_api_key
from tests import support
from tests.e2e.model_standin import ModelStandin
from tests.support import BASE_DIR, free_port

CACHE = Path.home() / ".cache" / "chatproject"
DEFAULT_VERSIONS = "2.8.4 2.41.1"
WORKFLOW_FILES = [
    BASE_DIR / "n8n" / "chat-reply.json",
    BASE_DIR / "n8n" / "chat-reply-offline.json",
    BASE_DIR / "n8n" / "feedback.json",
    BASE_DIR / "n8n" / "tests" / "chat-reply-fails.json",
    BASE_DIR / "n8n" / "tests" / "chat-files.json",
]
MODEL_API_KEY = "sk-standin-tests-only"
OWNER_EMAIL = "owner@example.test"
OWNER_PASSWORD = "Owner-passw0rd-for-tests"
READY_LINE = "Editor is now accessible via"
START_TIMEOUT = 180


def versions() -> list[str]:
    raw = os.environ.get("N8N_VERSIONS") or DEFAULT_VERSIONS
    return [v for v in raw.replace(",", " ").split() if v]


def needs_node24(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (2, 41)


def find_launcher(version: str) -> str | None:
    """The cached launcher of that version (2.8.4's plain binary from older caches too)."""
    home = CACHE / f"n8n-{version}"
    for candidate in (home / "n8n-launch", home / "node_modules" / ".bin" / "n8n"):
        if os.access(candidate, os.X_OK) and (home / ".installed").exists():
            if candidate.name == "n8n" and needs_node24(version):
                continue  # needs the launcher's Node 24
            return str(candidate)
    return None


class N8n:
    def __init__(self, version, binary):
        self.version = version
        self.binary = binary
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="n8n-e2e-"))
        self.log_path = BASE_DIR / "artifacts" / f"n8n-{version}-{self.port}.log"
        self.process = None
        self.api_key = ""
        self.timings = {}

    def env(self):
        env = dict(os.environ)
        env.update(
            {
                "N8N_USER_FOLDER": str(self.folder),
                "N8N_PORT": str(self.port),
                "N8N_LISTEN_ADDRESS": "127.0.0.1",
                "N8N_HOST": "127.0.0.1",
                "N8N_PROTOCOL": "http",
                "WEBHOOK_URL": f"{self.base_url}/",
                "N8N_ENCRYPTION_KEY": "chatproject-e2e-tests-only",
                "N8N_DIAGNOSTICS_ENABLED": "false",
                "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
                "N8N_TEMPLATES_ENABLED": "false",
                "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
                "N8N_PERSONALIZATION_ENABLED": "false",
                "N8N_HIRING_BANNER_ENABLED": "false",
                "N8N_SECURE_COOKIE": "false",
                "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
                "N8N_RUNNERS_BROKER_PORT": str(free_port()),
                "N8N_LOG_LEVEL": "info",
                "N8N_LOG_OUTPUT": "console",
                "DB_TYPE": "sqlite",
                "GENERIC_TIMEZONE": "UTC",
                "EXECUTIONS_DATA_PRUNE": "false",
                "NODE_OPTIONS": "--max-old-space-size=1024",
            }
        )
        return env

    def start(self):
        started = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [self.binary, "start"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"n8n {self.version} exited early: {self.log_tail()}")
            if READY_LINE in self.log_path.read_text(errors="replace"):
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"n8n did not become ready in {START_TIMEOUT}s: {self.log_tail()}")
        requests.get(f"{self.base_url}/healthz", timeout=5).raise_for_status()
        self.timings["start"] = time.monotonic() - started
        return self

    def create_api_key(self):
        """Owner set-up, login and an API key, as a person does in the editor."""
        started = time.monotonic()
        self.api_key = bootstrap_api_key(self.base_url, OWNER_EMAIL, OWNER_PASSWORD)
        self.timings["api_key"] = time.monotonic() - started
        return self.api_key

    def api(self) -> N8nApi:
        return N8nApi(self.base_url, self.api_key)

    def n8n_setup(
        self,
        *args,
        secret,
        model_url="",
        api_key=None,
        base_url=None,
        files=WORKFLOW_FILES,
        own_process=False,
    ):
        """`manage.py n8n_setup`: in its own process as an operator runs it, or
        through call_command (the same command, without a Python start-up).
        Returns something shaped like subprocess.CompletedProcess."""
        started = time.monotonic()
        values = {
            "N8N_BASE_URL": base_url or self.base_url,
            "N8N_API_KEY": self.api_key if api_key is None else api_key,
            "N8N_WEBHOOK_SECRET": secret,
            "N8N_MODEL_BASE_URL": model_url,
            "N8N_MODEL_API_KEY": MODEL_API_KEY,
        }
        argv = [*args, *map(str, files)]
        if own_process:
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatproject.settings", "DEBUG": "1"}
            result = subprocess.run(
                [sys.executable, "manage.py", "n8n_setup", *argv],
                cwd=BASE_DIR,
                env={**env, **values},
                capture_output=True,
                text=True,
                timeout=120,
            )
        else:
            stdout, stderr, returncode = io.StringIO(), "", 0
            try:
                with override_settings(**values):
                    call_command("n8n_setup", *argv, stdout=stdout)
            except CommandError as exc:
                stderr, returncode = f"CommandError: {exc}\n", exc.returncode or 1
            result = subprocess.CompletedProcess(argv, returncode, stdout.getvalue(), stderr)
        self.timings["n8n_setup"] = self.timings.get("n8n_setup", 0) + time.monotonic() - started
        return result

    def log_tail(self, chars=4000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


# --- fixtures (imported by tests/conftest.py, so every module shares one n8n) ---

SECRET = "e2e-webhook-secret-for-tests"
TIMINGS = {}


@pytest.fixture(scope="session")
def standin_model():
    """The OpenAI-compatible stand-in that chat-reply.json's model credential points at."""
    server = ModelStandin().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def model(standin_model):
    """The stand-in model, with no scripted answers left from another test."""
    standin_model.reset()
    yield standin_model
    standin_model.reset()


def project_server(n8n, **env) -> support.Server:
    """The project on Daphne, started, dispatching to `n8n` with the shared
    secret and no worker inside (a test decides who dispatches)."""
    server = support.Server(
        env={
            "N8N_BASE_URL": n8n.base_url,
            "N8N_WEBHOOK_SECRET": SECRET,
            "TASKS_WORKER_IN_PROCESS": "0",
            **env,
        }
    )
    server.start()
    return server


@pytest.fixture(scope="session", params=versions())
def n8n(request, standin_model):
    """An empty n8n of one version, taken by n8n_setup to working workflows."""
    version = request.param
    binary = find_launcher(version)
    support.need(
        binary is not None,
        f"needs n8n {version}: run scripts/install-n8n.sh {version} (5 to 10 minutes once)",
    )
    instance = N8n(version, binary)
    try:
        instance.start()
        instance.create_api_key()
        result = instance.n8n_setup(
            secret=SECRET, model_url=standin_model.base_url, own_process=True
        )
        instance.first_setup = result
        if result.returncode != 0:
            raise RuntimeError(f"n8n_setup failed: {result.stdout}\n{result.stderr}")
        yield instance
    finally:
        instance.stop()
        TIMINGS[f"n8n {version}"] = {k: round(v, 2) for k, v in instance.timings.items()}
        out = support.BASE_DIR / "artifacts" / "n8n-e2e-timings.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(TIMINGS, indent=2))
