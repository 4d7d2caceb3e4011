"""A real PgBouncer (Debian's `pgbouncer`) in transaction mode, started by a
test on a free port from the shipped template deploy/pgbouncer.ini.

PgBouncer refuses to run as root: as root it is started `-u postgres`, with
its folder given to that user. Every database name passes through to the
PostgreSQL server of the test session, so the test database is reached as
itself, only through the pooler.
"""

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from tests import support
from tests.support import BASE_DIR

TEMPLATE = BASE_DIR / "deploy" / "pgbouncer.ini"


def render_template(path, values):
    """deploy/render.py's `render` (deploy/ is no package: loaded by path)."""
    source = BASE_DIR / "deploy" / "render.py"
    spec = importlib.util.spec_from_file_location("deploy_render", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render(Path(path).read_text(), values)


def pgbouncer_binary():
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )


def need_pgbouncer():
    support.need(
        connection.vendor == "postgresql",
        "needs PostgreSQL: set DATABASE_URL=postgres://… (CI runs the suite on it)",
    )
    support.need(
        pgbouncer_binary() is not None,
        "needs Debian's pgbouncer (apt-get install pgbouncer; .ci/run installs it)",
    )


class PgBouncer:
    """`with PgBouncer() as bouncer:` … `bouncer.database_url()`."""

    def __init__(self, pool_size=5):
        self.port = support.free_port()
        self.pool_size = pool_size
        self.folder = None
        self.pid = None

    def start(self):
        import pwd

        self.folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        settings = connection.settings_dict
        values = {
            "PGBOUNCER_PORT": str(self.port),
            "PGBOUNCER_DIR": str(self.folder),
            "PGBOUNCER_DB_HOST": settings.get("HOST") or "127.0.0.1",
            "PGBOUNCER_DB_PORT": str(settings.get("PORT") or 5432),
            "PGBOUNCER_POOL_SIZE": str(self.pool_size),
            "PGBOUNCER_AUTH_TYPE": "trust",
        }
        ini = self.folder / "pgbouncer.ini"
        ini.write_text(render_template(TEMPLATE, values))
        user = settings.get("USER") or "postgres"
        (self.folder / "userlist.txt").write_text(f'"{user}" ""\n')
        command = [pgbouncer_binary(), "-d"]
        if os.geteuid() == 0:
            # mkdtemp's folder is 0700 and root's: PgBouncer runs as postgres.
            postgres = pwd.getpwnam("postgres")
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, postgres.pw_uid, postgres.pw_gid)
            command += ["-u", "postgres"]
        subprocess.run([*command, str(ini)], check=True, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pidfile = self.folder / "pgbouncer.pid"
            if pidfile.exists() and pidfile.read_text().strip():
                self.pid = int(pidfile.read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"PgBouncer did not listen on {self.port}: {self.log()}")

    def log(self):
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def database_url(self):
        """The test session's database, through PgBouncer."""
        settings = connection.settings_dict
        user = quote(settings.get("USER") or "postgres")
        return f"postgres://{user}@127.0.0.1:{self.port}/{settings['NAME']}"

    def stop(self):
        if self.pid is None:
            pidfile = self.folder / "pgbouncer.pid" if self.folder else None
            if pidfile and pidfile.exists():
                self.pid = int(pidfile.read_text())
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
