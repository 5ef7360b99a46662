#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: a virtualenv in .venv with
# napari-m1 installed (editable) with the given extras, and the Debian packages for a
# virtual display (Xvfb, Mesa, xcb) when they are missing. Safe to run repeatedly.
set -euo pipefail

EXTRAS="${1:-qt}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NAPARI_M1_VENV:-$ROOT/.venv}"

say() { printf '[napari-m1 setup] %s\n' "$*" >&2; }

# --- Debian packages: the virtual display, and PostgreSQL for the multi-site study tests ----
DEB_PKGS=(xvfb xauth libgl1-mesa-dri libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
  libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0)
# The test suite starts its own PostgreSQL server (tests/pgserver.py) from these binaries.
[[ "$EXTRAS" == *test* ]] && DEB_PKGS+=(postgresql)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${DEB_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
  fi
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    say "missing Debian packages (${missing[*]}); install them as root for headless runs"
  fi
fi

# --- Python virtualenv ---------------------------------------------------------------------
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.napari-m1-$EXTRAS-$(cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  say "installing napari-m1[$EXTRAS] (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e "$ROOT[$EXTRAS]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
