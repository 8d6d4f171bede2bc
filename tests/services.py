"""Real services for tests: an MLflow tracking server, PostgreSQL, Voilà and headless chromium.

Nothing here is a mock. Each service is a context manager that starts the real program on
127.0.0.1 (never another interface) on a free port, waits until it answers, yields where to
reach it and stops it afterwards, also when the test body raised: servers run in their own
process group, which is sent SIGTERM and then SIGKILL.

Two exceptions tell a test runner what went wrong:

- :class:`ServiceUnavailable`: a prerequisite is missing (PostgreSQL binaries, chromium, the
  ``playwright`` or ``voila`` package). The pytest fixtures skip on it, unless
  ``BPEXP_REQUIRE_SERVICES=1`` (set by CI), where a missing service is a failure.
- :class:`ServiceStartError`: the prerequisites are there but the service did not come up; the
  message carries the tail of the service's log. Always a failure.

The module imports only the standard library at import time, so collecting tests stays fast.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

LOCALHOST = "127.0.0.1"
REQUIRE_ENV = "BPEXP_REQUIRE_SERVICES"

#: Debian's chromium flags for a quiet, sandbox-less (root in a container) headless browser.
#: ``--host-resolver-rules`` keeps pages hermetic: any host except 127.0.0.1/localhost fails to
#: resolve at once, so a CDN link can neither slow a test down nor make it depend on the network.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
)


class ServiceUnavailable(RuntimeError):
    """A prerequisite of a service (a binary, a Python package, an OS user) is missing."""


class ServiceStartError(RuntimeError):
    """A service whose prerequisites are present failed to start or to answer in time."""


def services_required() -> bool:
    """Whether a missing service must fail rather than skip (``BPEXP_REQUIRE_SERVICES=1``)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def skip_or_fail(reason: str) -> NoReturn:
    """``pytest.skip(reason)``, or ``pytest.fail`` when ``BPEXP_REQUIRE_SERVICES=1``."""
    import pytest

    if services_required():
        pytest.fail(f"{reason} [{REQUIRE_ENV}=1: required services must not be skipped]", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (callers retry on a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc.strerror}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty log>"


def _spawn(cmd: Sequence[str], log_path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group) with stdout+stderr to a log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed user (e.g. runuser): it still exists
        return True
    return True


def stop_process_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (a session leader), then SIGKILL what is left."""
    pgid = proc.pid  # start_new_session=True: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    # The leader may be gone while children linger: give them a moment, then SIGKILL the rest.
    grace = time.monotonic() + 1.0
    while _group_alive(pgid) and time.monotonic() < grace:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of a GET, or None if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local URL
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def wait_for_http(
    url: str,
    *,
    proc: subprocess.Popen,
    log_path: Path,
    name: str,
    timeout: float = 60.0,
    ready: Callable[[int], bool] = lambda status: status == 200,
) -> None:
    """Poll ``url`` until ``ready(status)``; raise :class:`ServiceStartError` with the log tail.

    Fails early when the process exits instead of waiting for the timeout.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        status = _http_status(url)
        if status is not None and ready(status):
            return
        if proc.poll() is not None:
            raise ServiceStartError(
                f"{name} exited with code {proc.returncode} before answering {url}.\n"
                f"--- last lines of {log_path} ---\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise ServiceStartError(
                f"{name} did not answer {url} within {timeout:.0f} s (last status: {status}).\n"
                f"--- last lines of {log_path} ---\n{log_tail(log_path)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


_PORT_IN_USE = ("address already in use", "errno 98", "could not bind", "port is already in use")


@contextlib.contextmanager
def _serve(
    name: str,
    build_cmd: Callable[[int], Sequence[str]],
    *,
    probe: Callable[[int], str],
    log_path: Path,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    ready: Callable[[int], bool] = lambda status: status == 200,
    attempts: int = 3,
) -> Iterator[tuple[int, subprocess.Popen]]:
    """Start an HTTP server on a free port, retrying when another process took the port first."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        t0 = time.monotonic()
        proc = _spawn(build_cmd(port), log_path, env, cwd)
        try:
            wait_for_http(probe(port), proc=proc, log_path=log_path, name=name, timeout=timeout, ready=ready)
            with open(log_path, "a") as log:  # startup time, for whoever tunes the suite
                log.write(f"[tests/services.py] {name} answered after {time.monotonic() - t0:.2f} s\n")
        except ServiceStartError as exc:
            stop_process_group(proc)
            lost_race = any(s in log_tail(log_path, 15).lower() for s in _PORT_IN_USE)
            if lost_race and attempt < attempts:
                continue
            raise exc from None
        except BaseException:
            stop_process_group(proc)
            raise
        try:
            yield port, proc
        finally:
            stop_process_group(proc)
        return


def _child_env(**extra: str) -> dict[str, str]:
    """The current environment with the venv's bin first on PATH, plus ``extra``."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------

#: Artifact root stored in the template's Default experiment: the proxied ``mlflow-artifacts:``
#: scheme is relative to whatever ``--artifacts-destination`` the server is given, so one
#: template fits every server.
_SERVER_ARTIFACT_ROOT = "mlflow-artifacts:/"
_template_lock = threading.Lock()


def _is_migrated_mlflow_db(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            return bool(con.execute("SELECT version_num FROM alembic_version").fetchone())
    except sqlite3.Error:
        return False


def mlflow_template_db(cache_dir: Path | None = None) -> Path:
    """A fully migrated MLflow sqlite database to copy instead of migrating per server.

    A fresh store spends 2-5 s creating tables; copying the template takes milliseconds. Kept in
    ``cache_dir`` (default: a per-user temp dir; the pytest fixture uses ``.pytest_cache`` so
    it survives sessions) as ``mlflow-<version>.db``, so an MLflow upgrade builds a new one.
    Built in a subprocess (clean environment, no engine caches left in the caller) under a temp
    name and renamed into place, so concurrent builders cannot race on the schema.
    """
    from importlib.metadata import version

    if cache_dir is None:
        cache_dir = Path(tempfile.gettempdir()) / f"bpexp-mlflow-template-{os.getuid()}"
    cache_dir = Path(cache_dir).resolve()
    target = cache_dir / f"mlflow-{version('mlflow')}.db"
    with _template_lock:
        if _is_migrated_mlflow_db(target):
            return target
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".building-{os.getpid()}-{threading.get_ident()}.db"
        tmp.unlink(missing_ok=True)
        code = (
            "import sys\n"
            "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
            "SqlAlchemyStore('sqlite:///' + sys.argv[1], sys.argv[2]).engine.dispose()\n"
        )
        env = _child_env(MLFLOW_DISABLE_TELEMETRY="true")
        env.pop("MLFLOW_TRACKING_URI", None)
        result = subprocess.run(
            [sys.executable, "-c", code, str(tmp), _SERVER_ARTIFACT_ROOT],
            capture_output=True,
            text=True,
            env=env,
            cwd=cache_dir,
            timeout=300,
        )
        if result.returncode != 0 or not _is_migrated_mlflow_db(tmp):
            tmp.unlink(missing_ok=True)
            raise ServiceStartError(f"building the MLflow template database failed:\n{result.stderr[-3000:]}")
        os.replace(tmp, target)
        return target


def copy_mlflow_db(dest: Path, *, template: Path | None = None, default_artifact_location: str | None = None) -> str:
    """Copy the migrated template to ``dest`` and return its ``sqlite:///`` URI.

    ``default_artifact_location`` rewrites the Default experiment's artifact location (the
    template's is ``mlflow-artifacts:/0``, right only behind a server that serves artifacts);
    pass e.g. ``(tmp_path / "artifacts" / "0").as_uri()`` for a server-less store.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template or mlflow_template_db(), dest)
    if default_artifact_location is not None:
        with contextlib.closing(sqlite3.connect(dest)) as con, con:
            con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (default_artifact_location,),
            )
    return f"sqlite:///{dest.resolve()}"


@contextlib.contextmanager
def mlflow_server(workdir: Path, *, template: Path | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 and yield its URL, e.g. ``http://127.0.0.1:41234``.

    The backend store is ``workdir/mlflow.db`` (a copy of :func:`mlflow_template_db`, so no
    migration at startup) and artifacts are *proxied*: ``--artifacts-destination
    workdir/artifacts`` with the default ``--serve-artifacts``. Clients then upload and download
    artifacts and models over HTTP (``mlflow-artifacts:/`` URIs), which works from any process
    and needs no shared filesystem path. (``--default-artifact-root /path`` would instead make
    each client write to that local path directly.)

    One uvicorn worker; job execution (a huey consumer) and telemetry are off. The log is
    ``workdir/mlflow-server.log``; it is quoted in the error when the server fails to start.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "mlflow.db"
    if not db.exists():
        copy_mlflow_db(db, template=template)
    artifacts = workdir / "artifacts"
    artifacts.mkdir(exist_ok=True)
    env = _child_env(
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",
    )
    env.pop("MLFLOW_TRACKING_URI", None)

    def cmd(port: int) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{db}",
            "--artifacts-destination", str(artifacts),
            "--host", LOCALHOST,
            "--port", str(port),
            "--workers", "1",
        ]  # fmt: skip

    with _serve(
        "mlflow server",
        cmd,
        probe=lambda port: f"http://{LOCALHOST}:{port}/health",
        log_path=workdir / "mlflow-server.log",
        env=env,
        cwd=workdir,
        timeout=timeout,
    ) as (port, _proc):
        yield f"http://{LOCALHOST}:{port}"


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_PG_PROGRAMS = ("initdb", "pg_ctl", "postgres", "createdb")


def find_pg_bindir() -> Path | None:
    """The directory holding PostgreSQL's server programs, or None.

    ``$BPEXP_PG_BINDIR``, when set, is the only place looked at; otherwise ``pg_config --bindir``,
    the newest ``/usr/lib/postgresql/*/bin`` (Debian keeps server binaries off PATH) and PATH.
    """

    def complete(d: Path | str | None) -> bool:
        return bool(d) and all((Path(d) / p).is_file() and os.access(Path(d) / p, os.X_OK) for p in _PG_PROGRAMS)

    if override := os.environ.get("BPEXP_PG_BINDIR"):  # authoritative: lets a test hide PostgreSQL
        return Path(override) if complete(override) else None
    candidates: list[Path | str | None] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(out.stdout.strip())

    def major(p: Path) -> int:
        try:
            return int(p.parent.name.split(".")[0])
        except ValueError:
            return -1

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for c in candidates:
        if complete(c):
            return Path(c)
    return None


def _traversable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether user ``uid`` (group ``gid``) can reach ``path`` (x permission on every ancestor)."""
    path = path.resolve()
    for p in [path, *path.parents]:
        st = p.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _pg_base_dir(workdir: Path, uid: int, gid: int) -> Path:
    """Where to make the cluster directory: ``workdir`` if the server's user can reach it and
    the socket path stays short (unix socket paths are limited to ~107 bytes), else the temp dir
    (pytest's /tmp/pytest-of-root is mode 0700, unreachable for the ``postgres`` user)."""
    for base in (Path(workdir), Path(tempfile.gettempdir()), Path("/tmp")):
        with contextlib.suppress(OSError):
            base.mkdir(parents=True, exist_ok=True)
            if _traversable_by(base, uid, gid) and len(str(base.resolve())) < 60:
                return base.resolve()
    raise ServiceUnavailable(f"no directory reachable by uid {uid} for the PostgreSQL cluster (tried {workdir}, /tmp)")


@contextlib.contextmanager
def postgres_server(workdir: Path, *, dbname: str = "bpexp_test", timeout: float = 60.0) -> Iterator[str]:
    """Run a throwaway PostgreSQL cluster on 127.0.0.1 and yield a SQLAlchemy URL to a new database.

    ``postgresql+psycopg2://postgres@127.0.0.1:PORT/DBNAME`` with trust authentication. The
    unix socket lives in the cluster directory, never in /var/run/postgresql. As root the server
    runs as the ``postgres`` OS user (``runuser``; PostgreSQL refuses to run as root). Durability
    is switched off (fsync, synchronous_commit, full_page_writes): this is a test database.
    Stopped with ``pg_ctl -m fast stop`` (then ``immediate``, then SIGKILL) and removed.
    """
    bindir = find_pg_bindir()
    if bindir is None:
        raise ServiceUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in $BPEXP_PG_BINDIR, "
            "`pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH (Debian: apt-get install postgresql)"
        )
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    uid, gid = os.geteuid(), os.getegid()
    if as_root:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable("running as root but there is no `postgres` OS user to run the server") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise ServiceUnavailable("running as root but `runuser` (util-linux) is missing")
        uid, gid = pw.pw_uid, pw.pw_gid
        prefix = [runuser, "-u", "postgres", "--"]

    pgdir = Path(tempfile.mkdtemp(prefix="bpexp-pg-", dir=_pg_base_dir(Path(workdir), uid, gid)))
    try:
        os.chmod(pgdir, 0o755)
        if as_root:
            os.chown(pgdir, uid, gid)
        data = pgdir / "data"
        log = pgdir / "server.log"
        env = dict(os.environ, LC_ALL="C", PGCONNECT_TIMEOUT="10")
        env.pop("PGDATA", None)

        def run(cmd: list[str], what: str, as_server_user: bool = True) -> None:
            full = (prefix if as_server_user else []) + cmd
            res = subprocess.run(full, capture_output=True, text=True, env=env, cwd=pgdir, timeout=timeout)
            if res.returncode != 0:
                raise ServiceStartError(
                    f"PostgreSQL {what} failed (exit {res.returncode}): {' '.join(full)}\n"
                    f"{res.stdout[-2000:]}{res.stderr[-2000:]}\n--- {log} ---\n{log_tail(log)}"
                )

        run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--no-locale", "--no-sync"], "initdb")  # fmt: skip
        port = 0
        for attempt in range(3):
            port = free_port()
            opts = (
                f"-c listen_addresses={LOCALHOST} -p {port} -c unix_socket_directories={pgdir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w",
                     "-t", str(int(timeout)), "start"], "start")  # fmt: skip
                break
            except ServiceStartError:
                if attempt < 2 and "could not bind" in log_tail(log, 10).lower():
                    continue
                raise
        try:
            run([str(bindir / "createdb"), "-h", LOCALHOST, "-p", str(port), "-U", "postgres", dbname],
                "createdb", as_server_user=False)  # fmt: skip
            yield f"postgresql+psycopg2://postgres@{LOCALHOST}:{port}/{dbname}"
        finally:
            _stop_postgres(bindir, data, prefix, env, pgdir)
    finally:
        shutil.rmtree(pgdir, ignore_errors=True)


def _stop_postgres(bindir: Path, data: Path, prefix: list[str], env: dict[str, str], cwd: Path) -> None:
    for mode in ("fast", "immediate"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            res = subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "30", "stop"],
                capture_output=True,
                env=env,
                cwd=cwd,
                timeout=40,
            )
            if res.returncode == 0:
                return
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


def create_postgres_database(server_url: str, dbname: str) -> str:
    """Create another database on a running :func:`postgres_server` and return its URL.

    Costs ~50 ms, far less than a new cluster: the cheap way to isolate tests.
    """
    try:
        import psycopg2  # a dev dependency; imported lazily
    except ImportError:
        raise ServiceUnavailable("the `psycopg2` package is not installed (pip install psycopg2-binary)") from None

    head, _, _ = server_url.rpartition("/")
    dsn = head.replace("postgresql+psycopg2://", "postgresql://", 1) + "/postgres"
    con = psycopg2.connect(dsn)
    try:
        con.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        con.close()
    return f"{head}/{dbname}"


# --------------------------------------------------------------------------------------------
# Browser: Voilà + chromium through Playwright
# --------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """Path of a system chromium (``$BPEXP_CHROMIUM`` if set, else /usr/bin/chromium, PATH), or None.

    Playwright's own browser download does not work on these machines; Debian's does.
    """

    def ok(c: str | None) -> bool:
        return bool(c) and os.path.isfile(c) and os.access(c, os.X_OK)

    if override := os.environ.get("BPEXP_CHROMIUM"):  # authoritative
        return override if ok(override) else None
    for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if ok(c):
            return c
    return None


@contextlib.contextmanager
def chromium_browser(*, executable: str | None = None) -> Iterator[object]:
    """Launch headless chromium through Playwright's sync API; yield the ``Browser``.

    Closes the browser and stops Playwright's driver afterwards. Raises
    :class:`ServiceUnavailable` when playwright or chromium is missing.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ServiceUnavailable("the `playwright` package is not installed (pip install playwright)") from None
    executable = executable or find_chromium()
    if executable is None:
        raise ServiceUnavailable("no chromium executable (Debian: apt-get install chromium; or set $BPEXP_CHROMIUM)")
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS), timeout=60_000)
        except Exception as exc:
            raise ServiceStartError(f"launching {executable} through Playwright failed: {exc}") from exc
        try:
            yield browser
        finally:
            with contextlib.suppress(Exception):
                browser.close()


def _jupyter_env(workdir: Path) -> dict[str, str]:
    """A Jupyter server's environment: runtime, config, workspaces and IPython dirs private to ``workdir``."""
    return _child_env(
        JUPYTER_RUNTIME_DIR=str(workdir / "jupyter-runtime"),
        JUPYTER_CONFIG_DIR=str(workdir / "jupyter-config"),
        JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"),
        IPYTHONDIR=str(workdir / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        MPLBACKEND="Agg",
        MLFLOW_DISABLE_TELEMETRY="true",
    )


@contextlib.contextmanager
def voila_server(notebook_path: Path, workdir: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """Serve one notebook with Voilà on 127.0.0.1 (no token, no browser); yield the page URL.

    Each page load starts a fresh kernel and executes the whole notebook; sources are stripped,
    so only outputs and widgets are on the page. The kernel is the current interpreter
    (``python3`` kernelspec of this venv), started with cwd = the notebook's folder. Jupyter's
    runtime, config and IPython dirs are private to ``workdir`` so a user's config cannot leak
    in. The log is ``workdir/voila.log``.
    """
    try:
        import voila  # noqa: F401
    except ImportError:
        raise ServiceUnavailable("the `voila` package is not installed (pip install voila)") from None
    notebook_path = Path(notebook_path).resolve()
    if not notebook_path.is_file():
        raise FileNotFoundError(f"notebook to serve not found: {notebook_path}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = _jupyter_env(workdir)

    def cmd(port: int) -> list[str]:
        return [
            sys.executable, "-m", "voila", str(notebook_path),
            "--no-browser",
            f"--port={port}",
            f"--Voila.ip={LOCALHOST}",
            "--Voila.port_retries=0",
            "--Voila.token=",
            "--show_tracebacks=True",
        ]  # fmt: skip

    # Probe a static path: GET / would start a kernel and execute the notebook on every poll.
    with _serve(
        "voila",
        cmd,
        probe=lambda port: f"http://{LOCALHOST}:{port}/voila/static/",
        log_path=workdir / "voila.log",
        env=env,
        cwd=notebook_path.parent,
        timeout=timeout,
        ready=lambda status: status < 500,
    ) as (port, _proc):
        yield f"http://{LOCALHOST}:{port}/"


@contextlib.contextmanager
def jupyterlab_server(root_dir: Path, workdir: Path, *, timeout: float = 90.0) -> Iterator[str]:
    """Serve ``root_dir`` with JupyterLab on 127.0.0.1 (no token, no browser); yield the server's base URL.

    Kernels are the current interpreter (``python3`` kernelspec of this venv). Jupyter's
    runtime, config, workspaces and IPython dirs are private to ``workdir`` (a user's settings
    cannot leak in, and no earlier layout is restored). The log is ``workdir/jupyterlab.log``.
    """
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise ServiceUnavailable("the `jupyterlab` package is not installed (pip install jupyterlab)") from None
    root_dir = Path(root_dir).resolve()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = _jupyter_env(workdir)

    def cmd(port: int) -> list[str]:
        return [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            f"--port={port}",
            f"--ServerApp.ip={LOCALHOST}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={root_dir}",
            "--allow-root",  # CI runs as root; the server listens on 127.0.0.1 only
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip

    with _serve(
        "jupyterlab",
        cmd,
        probe=lambda port: f"http://{LOCALHOST}:{port}/api",
        log_path=workdir / "jupyterlab.log",
        env=env,
        cwd=root_dir,
        timeout=timeout,
    ) as (port, _proc):
        yield f"http://{LOCALHOST}:{port}/"
