"""Start and stop a throwaway PostgreSQL server on 127.0.0.1 for storage tests.

Needs the server binaries (`initdb`, `pg_ctl`, `createdb`); on Debian/Ubuntu:
`apt-get install -y postgresql`. PostgreSQL refuses to run as root, so as root the
commands run as the `postgres` user (`runuser -u postgres --`), in a private temp
folder chowned to it (pytest's tmp_path lies below a root-only folder).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


from cli_helpers import missing_prerequisite

SUPERUSER = "postgres"


def find_bin_dir() -> Path | None:
    """The folder holding initdb/pg_ctl: $PG_BIN, the PATH, or the newest /usr/lib/postgresql/*/bin."""
    candidates = [os.environ.get("PG_BIN", "")]
    on_path = shutil.which("pg_ctl")
    candidates.append(str(Path(on_path).resolve().parent) if on_path else "")  # /usr/local/bin may hold links
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for folder in candidates:
        if folder and all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl", "createdb")):
            return Path(folder)
    return None


def require_bin_dir() -> Path:
    """The binaries, or a skip; in CI (CI=true) their absence is a failure."""
    folder = find_bin_dir()
    if folder is None:
        missing_prerequisite("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", SUPERUSER, "--", *args]


@contextmanager
def postgres_server(database: str = "ssnas_test", password: str | None = None) -> Iterator[str]:
    """Run a fresh server for the block; yields `postgresql://postgres@127.0.0.1:PORT/database`
    (`postgres:PASSWORD@` when `password` is given: TCP logins then need it, scram-sha-256)."""
    bin_dir = require_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="ssnas-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SUPERUSER)
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", _free_port()
    env = {**os.environ, "PGPASSWORD": password} if password is not None else None

    def run(*args: str) -> None:
        result = subprocess.run(_as_server_user(list(args)), capture_output=True, text=True, timeout=120, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    auth = ["-A", "trust"]
    if password is not None:
        (root / "pwfile").write_text(password + "\n")
        os.chmod(root / "pwfile", 0o644)  # read by the server user
        auth = ["--auth-local", "trust", "--auth-host", "scram-sha-256", "--pwfile", str(root / "pwfile")]
    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, *auth, "--no-sync")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start")
        started = True
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, database)
        login = SUPERUSER if password is None else f"{SUPERUSER}:{password}"
        yield f"postgresql://{login}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
