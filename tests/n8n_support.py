"""A real n8n on 127.0.0.1 for the end-to-end tests.

n8n comes from scripts/install-n8n.sh (a cache folder outside the repository;
N8N_BIN names the binary, as .ci/run exports it). Each test session starts one
n8n with a user folder of its own, imports the shipped workflows and the Header
Auth credential with n8n's CLI, publishes (activates) them, starts n8n and waits
for the log line saying the editor is accessible: /healthz answers before the
workflows are active. chat-reply.json's model credential (an OpenAI one) gets
the base URL of the stand-in model server in tests/model_standin.py.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tests.support import BASE_DIR, free_port

N8N_VERSION = "2.8.4"
CACHE_BIN = (
    Path.home() / ".cache" / "chatproject" / f"n8n-{N8N_VERSION}" / "node_modules" / ".bin" / "n8n"
)
WORKFLOWS = {
    "ChatReplyOffln01": BASE_DIR / "n8n" / "chat-reply-offline.json",
    "ChatReplyFails01": BASE_DIR / "n8n" / "tests" / "chat-reply-fails.json",
    "ChatReplyModel01": BASE_DIR / "n8n" / "chat-reply.json",
}
CREDENTIAL_TEMPLATE = BASE_DIR / "n8n" / "credentials" / "header-auth.example.json"
MODEL_CREDENTIAL_TEMPLATE = BASE_DIR / "n8n" / "credentials" / "openai-compatible.example.json"
MODEL_API_KEY = "sk-standin-tests-only"
READY_LINE = "Editor is now accessible via"
START_TIMEOUT = 180


def find_binary() -> str | None:
    candidate = os.environ.get("N8N_BIN") or str(CACHE_BIN)
    return candidate if candidate and os.access(candidate, os.X_OK) else None


class N8n:
    def __init__(self, binary, secret, model_url):
        self.binary = binary
        self.secret = secret
        self.model_url = model_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="n8n-e2e-"))
        self.log_path = BASE_DIR / "artifacts" / f"n8n-{self.port}.log"
        self.process = None
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

    def cli(self, *args, timeout=180):
        started = time.monotonic()
        result = subprocess.run(
            [self.binary, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.timings[args[0]] = self.timings.get(args[0], 0) + time.monotonic() - started
        output = result.stdout + result.stderr
        if result.returncode != 0 or "GOT ERROR" in output or "An error occurred" in output:
            raise RuntimeError(
                f"n8n {' '.join(args)} failed ({result.returncode}): {output[-3000:]}"
            )
        return result.stdout + result.stderr

    def prepare(self):
        """Import the credentials and the workflows, publish them."""
        started = time.monotonic()
        credential = json.loads(CREDENTIAL_TEMPLATE.read_text())
        credential[0]["data"]["value"] = f"Bearer {self.secret}"
        model = json.loads(MODEL_CREDENTIAL_TEMPLATE.read_text())
        model[0]["data"].update({"url": self.model_url, "apiKey": MODEL_API_KEY})
        (self.folder / "credentials.json").write_text(json.dumps(credential + model))
        self.cli("import:credentials", f"--input={self.folder / 'credentials.json'}")
        workflows = self.folder / "workflows"
        workflows.mkdir()
        for workflow_id, path in WORKFLOWS.items():
            shutil.copy(path, workflows / f"{workflow_id}.json")
        out = self.cli("import:workflow", "--separate", f"--input={workflows}")
        if "Successfully imported 3 workflows" not in out:
            raise RuntimeError(f"n8n import:workflow did not import the workflows: {out[-2000:]}")
        for workflow_id in WORKFLOWS:
            self.cli("publish:workflow", f"--id={workflow_id}")
        self.timings["prepare"] = time.monotonic() - started

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
                raise RuntimeError(f"n8n exited early: {self.log_tail()}")
            if READY_LINE in self.log_path.read_text(errors="replace"):
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"n8n did not become ready in {START_TIMEOUT}s: {self.log_tail()}")
        requests.get(f"{self.base_url}/healthz", timeout=5).raise_for_status()
        self.timings["start"] = time.monotonic() - started
        return self

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
