"""Configuration from the environment: the documented defaults, the variables
read, refusals and production checks."""

import json
import os
import subprocess
import sys

import pytest

from tests.support import BASE_DIR


def _manage(*args, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_up_is_refused_without_secret_key_when_debug_is_off():
    result = _manage("check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="a-real-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        N8N_BASE_URL="http://127.0.0.1:5678",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_n8n_base_url():
    env = {k: v for k, v in os.environ.items() if k != "N8N_BASE_URL"}
    env.update(
        DEBUG="0",
        SECRET_KEY="a-real-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        N8N_BASE_URL="",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "n8n.E001" in result.stderr + result.stdout


def test_comma_lists_allow_spaces_around_commas():
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS)",
        DEBUG="1",
        ALLOWED_HOSTS="chat.example.com, localhost ,",
        CSRF_TRUSTED_ORIGINS=" https://chat.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "['chat.example.com', 'localhost'] ['https://chat.example.com']" in result.stdout


# --- the documented variables, each in a fresh process ---------------------------------

DOCUMENTED_VARIABLES = (
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "REDIS_URL",
    "PUBLIC_BASE_URL",
    "N8N_BASE_URL",
    "N8N_WEBHOOK_SECRET",
    "N8N_CHAT_WORKFLOW",
    "TASK_TIMEOUT_SECONDS",
    "TASK_WEBHOOK_MAX_BYTES",
    "CHAT_THINKING_MAX_LENGTH",
)

PRINT_SETTINGS = """
import json
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SECRET_KEY": s.SECRET_KEY,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": s.CSRF_TRUSTED_ORIGINS,
    "DATABASE_ENGINE": s.DATABASES["default"]["ENGINE"],
    "DATABASE_NAME": str(s.DATABASES["default"]["NAME"]),
    "LAYER": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "PUBLIC_BASE_URL": s.PUBLIC_BASE_URL,
    "N8N_BASE_URL": s.N8N_BASE_URL,
    "N8N_WEBHOOK_SECRET": s.N8N_WEBHOOK_SECRET,
    "N8N_CHAT_WORKFLOW": s.N8N_CHAT_WORKFLOW,
    "TASK_TIMEOUT_SECONDS": s.TASK_TIMEOUT_SECONDS,
    "TASK_WEBHOOK_MAX_BYTES": s.TASK_WEBHOOK_MAX_BYTES,
    "CHAT_THINKING_MAX_LENGTH": s.CHAT_THINKING_MAX_LENGTH,
}))
"""


def settings_in_a_fresh_process(**env):
    clean = {k: v for k, v in os.environ.items() if k not in DOCUMENTED_VARIABLES}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    clean.update(env)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((BASE_DIR / ".env").exists(), reason="a local .env overrides the defaults")
def test_configuration_defaults():
    values = settings_in_a_fresh_process(SECRET_KEY="a-production-secret-" + "x" * 40)
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1"]
    assert values["CSRF_TRUSTED_ORIGINS"] == []
    assert values["DATABASE_ENGINE"] == "django.db.backends.sqlite3"
    assert values["DATABASE_NAME"] == str(BASE_DIR / "db.sqlite3")
    assert values["LAYER"] == "channels.layers.InMemoryChannelLayer"
    assert values["PUBLIC_BASE_URL"] == "http://127.0.0.1:8000"
    assert values["N8N_BASE_URL"] == ""
    assert values["N8N_WEBHOOK_SECRET"] == ""
    assert values["N8N_CHAT_WORKFLOW"] == "chat-reply"
    assert values["TASK_TIMEOUT_SECONDS"] == 120
    assert values["TASK_WEBHOOK_MAX_BYTES"] == 1048576
    assert values["CHAT_THINKING_MAX_LENGTH"] == 100_000


@pytest.mark.skipif((BASE_DIR / ".env").exists(), reason="a local .env overrides the defaults")
def test_configuration_from_the_environment():
    values = settings_in_a_fresh_process(
        DEBUG="1",
        ALLOWED_HOSTS="chat.example.com,.example.org",
        CSRF_TRUSTED_ORIGINS="https://chat.example.com",
        DATABASE_URL="postgres://app@db.example.com:5432/chat",
        REDIS_URL="redis://127.0.0.1:6379/9",
        PUBLIC_BASE_URL="https://chat.example.com/",
        N8N_BASE_URL="http://n8n.example.com:5678",
        N8N_WEBHOOK_SECRET="s3cret",
        N8N_CHAT_WORKFLOW="my-chat",
        TASK_TIMEOUT_SECONDS="30",
        TASK_WEBHOOK_MAX_BYTES="2048",
        CHAT_THINKING_MAX_LENGTH="5000",
    )
    assert values["DEBUG"] is True
    assert values["SECRET_KEY"]  # the development key, accepted with DEBUG on
    assert values["ALLOWED_HOSTS"] == ["chat.example.com", ".example.org"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://chat.example.com"]
    assert values["DATABASE_ENGINE"] == "chatproject.postgresql"
    assert values["LAYER"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert values["PUBLIC_BASE_URL"] == "https://chat.example.com"
    assert values["N8N_BASE_URL"] == "http://n8n.example.com:5678"
    assert values["N8N_WEBHOOK_SECRET"] == "s3cret"
    assert values["N8N_CHAT_WORKFLOW"] == "my-chat"
    assert values["TASK_TIMEOUT_SECONDS"] == 30
    assert values["TASK_WEBHOOK_MAX_BYTES"] == 2048
    assert values["CHAT_THINKING_MAX_LENGTH"] == 5000


@pytest.mark.skipif((BASE_DIR / ".env").exists(), reason="a local .env overrides the defaults")
def test_the_queue_layer_is_one_setting_away():
    values = settings_in_a_fresh_process(
        DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/9", CHANNEL_LAYER_KIND="core"
    )
    assert values["LAYER"] == "channels_redis.core.RedisChannelLayer"


def _database_settings(**env):
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "db = settings.DATABASES['default']; "
        "print(json.dumps({'cursors_off': db.get('DISABLE_SERVER_SIDE_CURSORS', False), "
        "'prepare': db['OPTIONS'].get('prepare_threshold', 'unset'), "
        "'server_binding': db['OPTIONS'].get('server_side_binding', 'unset')}))"
    )
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_POOLER"}
    full_env.update({"DJANGO_SETTINGS_MODULE": "chatproject.settings", "DEBUG": "1", **env})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=full_env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_transaction_pooling_turns_server_side_cursors_and_prepared_statements_off():
    result = _database_settings(
        DATABASE_URL="postgres://postgres@127.0.0.1:6432/chatproject", DATABASE_POOLER="transaction"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "cursors_off": True,
        "prepare": None,
        "server_binding": False,
    }


def test_a_direct_postgresql_prepares_the_statements_a_connection_repeats():
    result = _database_settings(DATABASE_URL="postgres://postgres@127.0.0.1:5432/chatproject")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "cursors_off": False,
        "prepare": 1,
        "server_binding": True,
    }


def test_an_unknown_pooler_or_pooling_sqlite_is_refused():
    unknown = _database_settings(
        DATABASE_URL="postgres://postgres@127.0.0.1:6432/chatproject", DATABASE_POOLER="session"
    )
    assert unknown.returncode != 0
    assert "DATABASE_POOLER must be empty or transaction" in unknown.stderr
    sqlite = _database_settings(DATABASE_URL="sqlite:///x.sqlite3", DATABASE_POOLER="transaction")
    assert sqlite.returncode != 0
    assert "needs a PostgreSQL DATABASE_URL" in sqlite.stderr
