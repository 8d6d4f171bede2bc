"""Shared pytest fixtures. Each block is owned by whoever wrote it; add yours in a new section."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# ============================================================================================
# Built-in datasets' disk cache (bpexp.data.cache): a fresh one per test process, inherited by the
# subprocesses tests start, so the suite neither reads nor fills the user's ~/.cache and starts cold.
# ============================================================================================
if "BPEXP_CACHE_DIR" not in os.environ:
    os.environ["BPEXP_CACHE_DIR"] = tempfile.mkdtemp(prefix="bpexp-test-cache-")
    atexit.register(shutil.rmtree, os.environ["BPEXP_CACHE_DIR"], True)

# ============================================================================================
# Real services: MLflow server, PostgreSQL, Voilà + chromium (implementation: tests/services.py)
#
# A missing prerequisite skips the test with the reason, or FAILS it when
# BPEXP_REQUIRE_SERVICES=1 (CI). Mark tests using these fixtures `@pytest.mark.services`
# (and `@pytest.mark.slow` when they take more than a few seconds).
# ============================================================================================
import services  # noqa: E402  (tests/ is on sys.path: pytest's default rootdir-less "prepend" import mode)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _start(cm: contextlib.AbstractContextManager) -> tuple[contextlib.ExitStack, object]:
    """Enter a service context manager; skip/fail the test if its prerequisites are missing."""
    stack = contextlib.ExitStack()
    try:
        value = stack.enter_context(cm)
    except services.ServiceUnavailable as exc:
        services.skip_or_fail(str(exc))
    return stack, value


def _slug(request: pytest.FixtureRequest, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())[:limit].strip("_") or "test"


@pytest.fixture(scope="session")
def test_artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored): screenshots, logs worth keeping."""
    d = REPO_ROOT / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def mlflow_template_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated MLflow sqlite database (copy it; never write to it).

    Cached in ``.pytest_cache`` per MLflow version, so only the first session pays the ~4 s.
    """
    cache = getattr(request.config, "cache", None)  # None under `-p no:cacheprovider`
    where = cache.mkdir("bpexp-mlflow-template") if cache is not None else tmp_path_factory.mktemp("mlflow-template")
    return services.mlflow_template_db(where)


@pytest.fixture
def mlflow_sqlite_uri(tmp_path: Path, mlflow_template_db: Path) -> str:
    """A fresh, already-migrated ``sqlite:///…/mlflow.db`` store in ``tmp_path`` (no server).

    The Default experiment's artifacts go to ``tmp_path/artifacts/0``. Copying costs
    milliseconds instead of the 2-5 s a new store spends creating its tables.
    """
    return services.copy_mlflow_db(
        tmp_path / "mlflow.db",
        template=mlflow_template_db,
        default_artifact_location=(tmp_path / "artifacts" / "0").as_uri(),
    )


@pytest.fixture(scope="session")
def mlflow_server_url(tmp_path_factory: pytest.TempPathFactory, mlflow_template_db: Path) -> Iterator[str]:
    """URL of one real ``mlflow server`` shared by the whole session (``http://127.0.0.1:PORT``).

    Shared: create your own experiment (unique name) rather than assuming an empty store.
    Artifacts are proxied by the server (``mlflow-artifacts:/``).
    """
    workdir = tmp_path_factory.mktemp("mlflow-server")
    stack, url = _start(services.mlflow_server(workdir, template=mlflow_template_db))
    with stack:
        yield url


@pytest.fixture
def mlflow_server_url_fresh(tmp_path: Path, mlflow_template_db: Path) -> Iterator[str]:
    """A dedicated, empty ``mlflow server`` for one test (~5 s to start): only when you need that."""
    stack, url = _start(services.mlflow_server(tmp_path / "mlflow-server", template=mlflow_template_db))
    with stack:
        yield url


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL 15 cluster for the session: URL of its ``bpexp_test`` database.

    ``postgresql+psycopg2://postgres@127.0.0.1:PORT/bpexp_test``. Prefer ``postgres_url``.
    """
    stack, url = _start(services.postgres_server(tmp_path_factory.mktemp("postgres")))
    with stack:
        yield url


_pg_counter = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, postgres_server_url: str) -> str:
    """A new, empty database on the session's PostgreSQL cluster (~50 ms): per-test isolation."""
    try:
        return services.create_postgres_database(postgres_server_url, f"t{next(_pg_counter)}_{_slug(request)}")
    except services.ServiceUnavailable as exc:
        services.skip_or_fail(str(exc))


@pytest.fixture
def chromium_browser() -> Iterator[object]:
    """Headless Debian chromium through Playwright (a ``playwright.sync_api.Browser``).

    Function-scoped on purpose: while Playwright's sync API is alive, ``asyncio.run`` fails
    in the same thread ("cannot be called from a running event loop"), which would break later
    tests that use asyncio (jupyter_client, nbval). Launching takes ~1 s. (Named so as not to
    collide with pytest-playwright's ``browser``/``page`` should that plugin ever be installed.)
    """
    stack, b = _start(services.chromium_browser())
    with stack:
        yield b


@pytest.fixture
def browser_page(chromium_browser) -> Iterator[object]:
    """A fresh page (own browser context, 1280x800) with 30 s default timeouts."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def serve_notebook(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """``serve_notebook(path) -> url``: serve a notebook with Voilà until the test ends."""
    with contextlib.ExitStack() as stack:
        count = iter(range(1_000))

        def serve(notebook: Path) -> str:
            workdir = tmp_path / f"voila-{next(count)}"
            try:
                return stack.enter_context(services.voila_server(Path(notebook), workdir))
            except services.ServiceUnavailable as exc:
                services.skip_or_fail(str(exc))

        yield serve


# ============================================================================================
# (end of the real-services section)
# ============================================================================================
