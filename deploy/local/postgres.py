"""A throwaway PostgreSQL cluster on 127.0.0.1, created with initdb and run with pg_ctl."""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from defectline.deploy.local.errors import ServiceStartError, StackError, ToolMissingError
from defectline.deploy.local.ports import LOOPBACK
from defectline.deploy.local.process import is_alive, tail

logger = logging.getLogger(__name__)

POSTGRES_LIB_ROOT = Path("/usr/lib/postgresql")
# initdb refuses to run as root, so root runs the server as this system user instead.
SERVER_USER = "postgres"
SUPERUSER = "postgres"
APP_ROLE = "defectline"
APP_DATABASE = "defectline"
# A fixed, world-writable parent, so _prepare_parent checks who owns the folder it reuses.
_RELOCATED_ROOT = Path("/var/tmp")  # noqa: S108
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_postgres_bin(path_env: str | None = None, lib_root: Path = POSTGRES_LIB_ROOT) -> Path:
    """Return the folder holding initdb and pg_ctl: from PATH, else the newest under `lib_root`."""
    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    pg_ctl = shutil.which("pg_ctl", path=path_env)
    if pg_ctl and shutil.which("initdb", path=str(Path(pg_ctl).parent)):
        return Path(pg_ctl).parent

    candidates = [bin_dir for bin_dir in lib_root.glob("*/bin")
                  if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists()]
    if not candidates:
        raise ToolMissingError(
            "PostgreSQL server programs initdb and pg_ctl not found on PATH or in "
            f"{lib_root}/*/bin; install them with `apt-get install postgresql` (Debian/Ubuntu) "
            "or put the PostgreSQL bin folder on PATH"
        )
    return max(candidates, key=_version_key)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    digits = re.findall(r"\d+", bin_dir.parent.name)
    return tuple(int(part) for part in digits) or (0,)


def _ensure_server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    logger.info("creating system user=%s for the PostgreSQL server", SERVER_USER)
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home",
         "--home-dir", "/var/lib/postgresql", "--shell", "/usr/sbin/nologin", SERVER_USER],
        check=True, capture_output=True, timeout=30,
    )
    return pwd.getpwnam(SERVER_USER)


class PostgresCluster:
    """One PostgreSQL cluster with trust authentication that listens on 127.0.0.1 only.

    When the caller is root, the cluster runs as the `postgres` system user and its data
    directory moves to /var/tmp/defectline-postgres-<hash of data_dir>, because that user cannot
    reach folders under a home directory with mode 700. `data_dir` then only names the cluster.
    """

    def __init__(self, data_dir: Path, port: int, log_path: Path, bin_dir: Path | None = None):
        self.requested_dir = data_dir
        self.port = port
        self.log_path = log_path
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        if self.as_root:
            digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
            self.data_dir = _RELOCATED_ROOT / f"defectline-postgres-{digest}" / "data"
        else:
            self.data_dir = data_dir

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def pid(self) -> int | None:
        """The postmaster process id from postmaster.pid, or None."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first_line)
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def conninfo(self, dbname: str = APP_DATABASE, user: str = APP_ROLE) -> str:
        """Return a libpq connection string for `dbname` as `user`."""
        return f"host={LOOPBACK} port={self.port} user={user} dbname={dbname}"

    def is_running(self) -> bool:
        """Return True when the postmaster of this data directory runs."""
        return is_alive(self.pid, cmdline_part="postgres")

    def start(self, timeout_s: float = 60.0) -> None:
        """Create the cluster if needed, start it unless it runs, and create the app database."""
        if not self.is_running():
            bin_dir = self.bin_dir or find_postgres_bin()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb(bin_dir)
            self._pg_ctl_start(bin_dir, timeout_s)
        self.ensure_database(APP_DATABASE)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the server with a fast shutdown (open sessions are rolled back)."""
        if not self.is_running():
            return
        bin_dir = self.bin_dir or find_postgres_bin()
        logger.info("stopping postgres pid=%s data=%s", self.pid, self.data_dir)
        self._run([str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                   "-w", "-t", str(int(timeout_s))], timeout_s + 10)

    def remove(self) -> None:
        """Stop the server and delete its data directory."""
        self.stop()
        target = self.data_dir.parent if self.as_root else self.data_dir
        shutil.rmtree(target, ignore_errors=True)

    def ensure_database(self, dbname: str, owner: str = APP_ROLE) -> str:
        """Create role `owner` and database `dbname` unless they exist; return its conninfo."""
        _check_db_name(dbname)
        _check_db_name(owner)
        with self._admin_connection() as conn:
            role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,))
            if role.fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(owner)))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(dbname), sql.Identifier(owner)))
                logger.info("created database=%s owner=%s port=%d", dbname, owner, self.port)
        return self.conninfo(dbname, owner)

    def drop_database(self, dbname: str) -> None:
        """Drop `dbname`, closing any sessions still connected to it."""
        _check_db_name(dbname)
        with self._admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(dbname)))

    def _admin_connection(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo("postgres", SUPERUSER), autocommit=True,
                               connect_timeout=10)

    def _initdb(self, bin_dir: Path) -> None:
        self._prepare_parent()
        logger.info("creating postgres cluster data=%s", self.data_dir)
        self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], 120)
        # A throwaway cluster: durability settings are off to keep tests fast.
        settings = [
            "",
            "# defectline local stack",
            f"listen_addresses = '{LOOPBACK}'",
            f"unix_socket_directories = '{self.data_dir}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 200",
        ]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    def _prepare_parent(self) -> None:
        parent = self.data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not self.as_root:
            return

        # The requested folder stays as the marker that remove_orphaned_clusters checks.
        self.requested_dir.mkdir(parents=True, exist_ok=True)
        user = _ensure_server_user()
        owner_uid = parent.lstat().st_uid
        if parent.is_symlink() or owner_uid not in (0, user.pw_uid):
            raise StackError(
                f"{parent} is a symbolic link or owned by uid {owner_uid}, not by root or "
                f"{SERVER_USER}; remove it and retry"
            )
        os.chown(parent, user.pw_uid, user.pw_gid)
        parent.chmod(0o700)
        (parent / "origin").write_text(f"{self.requested_dir.resolve()}\n")

    def _pg_ctl_start(self, bin_dir: Path, timeout_s: float) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir), "-w",
                "-t", str(int(timeout_s)), "-o", f"-p {self.port}"]
        # No -l: the server inherits this log file, which root opened, so the server user
        # needs no write access to the log folder.
        with self.log_path.open("a") as log:
            completed = subprocess.run(
                self._as_server_user(argv), stdout=log, stderr=subprocess.STDOUT, cwd="/",
                start_new_session=True, timeout=timeout_s + 10, check=False,
            )
        if completed.returncode != 0:
            raise ServiceStartError(
                f"PostgreSQL did not start on {LOOPBACK}:{self.port} (pg_ctl exit code "
                f"{completed.returncode}). Last lines of {self.log_path}:\n{tail(self.log_path)}"
            )
        logger.info("started postgres pid=%s port=%d data=%s log=%s", self.pid, self.port,
                    self.data_dir, self.log_path)

    def _run(self, argv: list[str], timeout_s: float) -> None:
        completed = subprocess.run(self._as_server_user(argv), capture_output=True, text=True,
                                   cwd="/", timeout=timeout_s, check=False)
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).strip()
            raise StackError(
                f"`{Path(argv[0]).name} {argv[1]}` failed for {self.data_dir} "
                f"(exit code {completed.returncode}):\n{output[-3000:]}"
            )

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if not self.as_root:
            return argv
        return ["runuser", "-u", SERVER_USER, "--", *argv]


def remove_orphaned_clusters() -> list[Path]:
    """Stop and delete relocated clusters whose requested data directory no longer exists.

    A test session killed before its teardown leaves such a cluster behind in /var/tmp once
    pytest deletes the session's temporary folder. Returns the folders removed.
    """
    removed = []
    for parent in sorted(_RELOCATED_ROOT.glob("defectline-postgres-*")):
        try:
            origin = Path((parent / "origin").read_text().strip())
        except OSError:
            continue
        if origin.exists():
            continue
        cluster = PostgresCluster(origin, port=0, log_path=parent / "orphan.log")
        cluster.data_dir = parent / "data"
        try:
            cluster.remove()
        except StackError as exc:
            logger.warning("cannot remove orphaned postgres cluster dir=%s error=%s", parent, exc)
            continue
        logger.info("removed orphaned postgres cluster dir=%s origin=%s", parent, origin)
        removed.append(parent)
    return removed


def _check_db_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise StackError(
            f"invalid PostgreSQL name {name!r}: use 1-63 lowercase letters, digits or "
            "underscores, starting with a letter or underscore"
        )
