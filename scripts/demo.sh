#!/usr/bin/env bash
# The main job: napari with the napari-m1 dock and the sample case loaded.
# Without a display it runs a scripted session under a virtual display, writes a
# screenshot and a CSV into out/demo/, and exits. Extra arguments go to `napari-m1 demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/_setup.sh" qt
cd "$ROOT"
export QT_API="${QT_API:-pyqt6}"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -z "${CI:-}" ]; then
  exec napari-m1 demo "$@"
fi
exec xvfb-run -a -s "-screen 0 1920x1080x24" napari-m1 demo --headless --out out/demo "$@"
