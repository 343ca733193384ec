"""Browser tests: headless Chromium (Debian's `chromium`, driven by Playwright with that executable)
against a live server and a real django-q2 worker (`manage.py qcluster`) sharing the test database.

- One browser and one context (cookies, storage) per test (see `browser` for why not per session).
- The web server is Django's live server thread; the worker is a separate process, so the pages see
  work finish the way a user does: enqueued by the request, done by the worker, seen on reload.
- On SQLite the test database is in memory, which another process cannot open: each test moves onto
  a file copy of it (see `_sqlite_file_database`), which the server, the worker and the test share.
- A failed test leaves a full-page screenshot in test-artifacts/e2e/<test>.png.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection, connections

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
PASSWORD = "pw-123-secret"  # tests/conftest.py make_user
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
WAIT_SECONDS = 20


def chromium_executable() -> str | None:
    """Debian's chromium (what `make test` installs); CHROMIUM_EXECUTABLE points elsewhere."""
    for candidate in (os.environ.get("CHROMIUM_EXECUTABLE"), *CHROMIUM_CANDIDATES):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.when in ("setup", "call"):
        page = getattr(item, "_e2e_page", None)
        if page is not None and not page.is_closed():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name)
            path = ARTIFACTS / f"{name}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                report.sections.append(("e2e", f"screenshot: {path} (page {page.url})"))
            except Exception as error:  # the failure itself matters more than its picture
                report.sections.append(("e2e", f"no screenshot: {error}"))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    finally:
        if "site" in getattr(item, "fixturenames", ()):
            # Once Playwright is alive the test body runs in a context (greenlet) of its own, so
            # Django gives it a connection of its own: close it here, in that context, or on
            # PostgreSQL it outlives the test and keeps the test database from being dropped.
            connections.close_all()


# -- the browser ------------------------------------------------------------------------------------


@pytest.fixture
def browser(monkeypatch):
    """Headless Chromium from the system, nothing downloaded; one per test.

    Not one per session: while Playwright's sync API is alive it keeps an asyncio loop marked as
    running in this thread, and Django then refuses every ORM call ("async context"). A browser kept
    for the session would break the database teardown of this test and every test the same xdist
    process runs next. Starting Chromium costs about a second.
    """
    executable = chromium_executable()
    if executable is None:
        pytest.skip(
            "BROWSER TESTS NOT RUN: no Chromium found (looked for $CHROMIUM_EXECUTABLE, /usr/bin/chromium, chromium, "
            "chromium-browser). Install Debian's package: `apt-get install chromium` (`make test` does it as root)."
        )
    from playwright.sync_api import expect, sync_playwright

    # What the test does with the ORM between browser steps is plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        # Playwright runs Chromium without its sandbox by default, which running as root (CI) needs.
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        expect.set_options(timeout=WAIT_SECONDS * 1000)
        yield browser
        browser.close()


@pytest.fixture
def page(request, site, browser):
    context = browser.new_context(base_url=site.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_SECONDS * 1000)
    page = context.new_page()
    request.node._e2e_page = page
    yield page
    # Close the sockets first: the server's request threads end and release their connections.
    context.close()


# -- the site: live server + worker on one database -------------------------------------------------


class Site:
    def __init__(self, url: str, worker: subprocess.Popen, worker_log: Path):
        self.url = url
        self.worker = worker
        self.worker_log = worker_log

    def log_in(self, page, user) -> None:
        """Through the login page, as a person does."""
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r"^(?!.*/accounts/login/)"))

    def reload_until(self, page, locator, text: str, *, seconds: float = WAIT_SECONDS) -> None:
        """Reload the page until `locator` shows `text`: what a user does while the worker works."""
        deadline = time.monotonic() + seconds
        while True:
            if locator.count() and text in locator.first.inner_text():
                return
            self.assert_worker_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not shown within {seconds} s; shown: {locator.all_inner_texts()!r}")
            time.sleep(0.3)
            page.reload()

    def assert_worker_alive(self) -> None:
        if self.worker.poll() is not None:
            output = self.worker_log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"the worker exited ({self.worker.returncode}):\n{output}")


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = quote(settings.get("USER") or "", safe="")
    password = f":{quote(settings['PASSWORD'], safe='')}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "localhost"
    return f"postgres://{user}{password}@{host}:{settings.get('PORT') or 5432}/{settings['NAME']}"


@contextmanager
def _sqlite_file_database(path: Path):
    """Run the test on a file copy of the in-memory SQLite test database.

    The copy is taken with SQLite's backup API after the test's data is loaded; the connection
    settings every thread reads are pointed at the file, so the live server's threads, this thread
    and the worker process all use it. The in-memory database is kept aside untouched (closing its
    last connection would destroy it) and put back afterwards, where pytest-django flushes it.
    """
    memory = connections["default"]
    memory.ensure_connection()
    shared = memory.settings_dict
    target = sqlite3.connect(path)
    try:
        memory.connection.backup(target)
    finally:
        target.close()
    memory_name = shared["NAME"]
    memory.settings_dict = dict(shared)  # still names the in-memory database, so it is never closed
    shared["NAME"] = str(path)
    connections["default"] = connections.create_connection("default")
    try:
        yield
    finally:
        connections["default"].close()
        shared["NAME"] = memory_name
        memory.settings_dict = shared
        connections["default"] = memory


@contextmanager
def _worker(log: Path):
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.e2e.worker_settings",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    # Output to a file, not a pipe nobody reads (a full pipe would block the worker).
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the cluster's sentinel and workers stop with it
        )
    try:
        yield worker
    finally:
        _stop_group(worker)


def _group_alive(group: int) -> bool:
    """Whether a process of the group is still running (zombies, which nobody may reap in a container, hold nothing)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def _stop_group(process: subprocess.Popen) -> None:
    """Stop the cluster and every process it started; return once none is left holding the database."""
    # First the cluster alone (it stops its sentinel, workers and monitor in order), then everyone.
    for stop in (process.terminate, lambda: os.killpg(process.pid, signal.SIGKILL)):
        try:
            stop()
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 10
        while _group_alive(process.pid) and time.monotonic() < deadline:
            process.poll()
            time.sleep(0.05)
        if not _group_alive(process.pid):
            break
    process.wait(timeout=10)


@contextmanager
def _live_server():
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    server = LiveServerThread("127.0.0.1", StaticFilesHandler)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.terminate()


@pytest.fixture
def site(request, transactional_db, monkeypatch, tmp_path):
    """The live server and a worker on the test database; request it after the fixtures that load data."""
    from django_q.conf import Conf

    # From here on, tasks go to the database queue and the worker runs them (the test settings
    # otherwise run them inline, in the request).
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")
    # Request threads close their connection after each request, as a production server's
    # workers end theirs, so nothing holds the test database when the test ends.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    with _database_for_other_processes(tmp_path), _live_server() as url, _worker(tmp_path / "worker.log") as worker:
        yield Site(url, worker, tmp_path / "worker.log")


@contextmanager
def _database_for_other_processes(tmp_path: Path):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        with _sqlite_file_database(tmp_path / "e2e.sqlite3"):
            yield
    else:
        yield
