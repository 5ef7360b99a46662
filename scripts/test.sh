#!/usr/bin/env bash
# Run the whole test suite (installs what it needs first). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/_setup.sh" test
cd "$ROOT"
ruff check src tests benchmarks
# pytest-xvfb starts a virtual display when there is none (CI, ssh sessions).
export QT_API="${QT_API:-pyqt6}"
python -m pytest "$@"
