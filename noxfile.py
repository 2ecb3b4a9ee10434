"""The release matrix: ``nox`` runs every default session, ``nox -s floors`` one of them.

``./scripts/test`` (the locked suite) is what contributors and CI run; these sessions are
what a release is checked with. Sessions install through uv (``default_venv_backend``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv"

PYTHON = "3.11"
ROOT = Path(__file__).parent
PYTEST = ("python", "-m", "pytest", "-n", "auto", "-p", "no:cacheprovider")
# Fails unless each requirement (argv) is installed at exactly its ``>=`` bound: a floor that
# cannot be installed (e.g. one a neighbour's own floor overrides) is not a true floor.
CHECK_FLOORS = """
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
from packaging.version import Version
wrong = []
for line in sys.argv[1:]:
    req = Requirement(line)
    floor = next(Version(s.version) for s in req.specifier if s.operator == ">=")
    if Version(version(req.name)) != floor:
        wrong.append(f"{req.name}: floor {floor}, installed {version(req.name)}")
    print(f"{req.name}=={version(req.name)}")
sys.exit("\\n".join(wrong) or None)
"""


def _name(requirement: str) -> str:
    """The normalised project name in a requirement (``Flask_Session>=0.8``: ``flask-session``)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[@]", requirement, maxsplit=1)[0]).lower()


def _runtime_requirements() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _locked(session: nox.Session, *args: str) -> list[str]:
    """The pins uv.lock holds for the given extras, one ``name==version ; marker`` per line."""
    out = session.run(
        "uv", "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-header",
        "--no-annotate", *args, silent=True, external=True,
    )  # fmt: skip
    assert isinstance(out, str)
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def _sync(session: nox.Session, *extras: str) -> None:
    """Install the locked environment for ``extras`` into the session's virtualenv."""
    args = [f"--extra={extra}" for extra in extras]
    session.run_install(
        "uv", "sync", "--locked", *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )  # fmt: skip


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The locked suite: lint, types, docs and every test, exactly as CI runs it."""
    session.run("./scripts/test", *session.posargs, external=True)


@nox.session(python=PYTHON)
def floors(session: nox.Session) -> None:
    """The suite (browser test aside) and mypy on every runtime dependency's lower bound.

    uv's ``lowest-direct`` resolution lowers the runtime dependencies to their floors; the
    test and lint tools stay at the lock's versions (a constraints file), so a failure here
    is a floor that is not true.
    """
    runtime = {_name(line) for line in _locked(session)}
    runtime |= {_name(req) for req in _runtime_requirements()}
    pins = [line for line in _locked(session, "--extra=dev") if _name(line) not in runtime]
    # Beside the virtualenv: session.create_tmp() would also move TMPDIR into the project.
    constraints = Path(session.virtualenv.location) / "tool-constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    session.install(
        "--resolution=lowest-direct", f"--constraint={constraints}", "-e", ".[test,lint]"
    )
    session.run("python", "-c", CHECK_FLOORS, *_runtime_requirements())
    session.run("mypy")
    session.run(*PYTEST, "-m", "not browser", *session.posargs)


@nox.session(python=PYTHON)
def latest(session: nox.Session) -> None:
    """The whole suite and mypy on today's newest release of everything, no lock."""
    session.install("--upgrade", "--resolution=highest", "-e", ".[dev]")
    session.run("mypy")
    session.run(*PYTEST, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff's format and lint checks, at the lock's version."""
    _sync(session, "lint")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict (configured in setup.cfg), at the lock's versions."""
    _sync(session, "dev")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The Sphinx build, warnings as errors, at the lock's versions."""
    _sync(session, "docs", "test-core")  # autodoc imports the pytest plugin
    session.run(
        "sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(python=False, default=False)
def mutation(session: nox.Session) -> None:
    """Mutation testing (slow: not part of the default run)."""
    session.run("./scripts/mutation", *session.posargs, external=True)
