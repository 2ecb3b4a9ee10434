# Sourced by scripts/test and scripts/demo: puts uv on PATH. Where it is not installed, it is
# pip-installed into a virtualenv of its own under .tmp/ (neither the user's site-packages nor
# a distribution's Python is touched). Needs die() and PYTHON from the caller.
if ! command -v uv >/dev/null 2>&1; then
  if [ ! -x .tmp/uv/bin/uv ]; then
    echo "Installing uv into .tmp/uv..."
    rm -rf .tmp/uv
    "$PYTHON" -m venv .tmp/uv && .tmp/uv/bin/python -m pip install --quiet uv \
      || die "could not install uv with $PYTHON: install uv (https://docs.astral.sh/uv/), or a Python 3.11+ with venv and pip (Debian/Ubuntu: apt-get install python3-venv)"
  fi
  export PATH="$PWD/.tmp/uv/bin:$PATH"
fi
export UV_PYTHON=${UV_PYTHON:-$PYTHON}
