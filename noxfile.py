"""nox sessions: tests (Python 3.11/3.13 x asyncio/trio), lint, typecheck, bench, docs."""

from __future__ import annotations

import os
import sys

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.13"]
BACKENDS = ["asyncio", "trio"]


def _pyenv_paths() -> None:
    # pyenv keeps 3.13 outside PATH on these machines; let nox find it.
    root = os.path.expanduser("~/.pyenv/versions")
    if os.path.isdir(root):
        extra = [os.path.join(root, v, "bin") for v in sorted(os.listdir(root))]
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


_pyenv_paths()


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Whole suite on one Python and one backend, against real RabbitMQ and Redis."""
    session.install("-e", ".[dev]", "-e", "./studio")
    env = {"RELAYNA_TEST_BACKENDS": backend}
    if "RELAYNA_TEST_AMQP_URL" in os.environ:
        session.run("pytest", *session.posargs, env=env)
    else:
        session.run(
            "python", "scripts/services.py", "run", "--", "pytest", *session.posargs, env=env
        )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff (incl. ASYNC/B/BLE) and the no-asyncio/trio-imports rule for src/relayna."""
    session.install("-e", ".[dev]", "-e", "./studio")
    paths = ("src", "tests", "benchmarks", "scripts", "examples", "studio")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run(sys.executable, "scripts/check_imports.py", external=True)


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/relayna and studio/src/relayna_studio (warn_unused_ignores:
    a stale ``type: ignore`` fails)."""
    session.install("-e", ".[dev]", "-e", "./studio")
    session.run("mypy")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Every benchmark (prints tables; never a pass/fail gate)."""
    session.install("-e", ".[dev,bench]", "-e", "./studio")
    names = session.posargs or ["all"]
    if "RELAYNA_TEST_AMQP_URL" in os.environ:
        session.run("python", "-m", "benchmarks", *names)
    else:
        session.run(
            "python", "scripts/services.py", "run", "--", "python", "-m", "benchmarks", *names
        )


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors."""
    session.install("-e", ".[dev,docs]")
    session.run("mkdocs", "build", "--strict")
