#!/usr/bin/env bash
# The tests, from a fresh clone, in one command (this is what CI runs):
#
#     bash scripts/run_tests.sh            # extra arguments go to pytest, e.g. -k transfer -x, -m "not server"
#
# Sets up, once, one environment: .venv with a full ComfyUI (a copy of $COMFYUI_SOURCE, default
# ../shared/host/ComfyUI, in .comfyui/) and its requirements, the newest editor frontend from PyPI beside the one
# ComfyUI pins (.comfyui/frontend-<version>/), and Debian's chromium for the editor tests. Then the whole suite:
# the pack on ComfyUI's real core, a real server, the workflows through ComfyUI's own validation and the editor in
# headless Chromium. No test may be skipped. torch runs with one thread unless E4E_TORCH_THREADS says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source_dir=${COMFYUI_SOURCE:-$root/../shared/host/ComfyUI}
host_copy=$root/.comfyui/ComfyUI
torch_pins=(torch==2.14.1 torchvision==0.29.1)  # local wheels on the project's machines; any other is a big download
newest_frontend=1.58.1  # the newest comfyui-frontend-package on PyPI when this was written (ComfyUI pins 1.27.10)

if [ ! -f "$source_dir/main.py" ] || [ ! -d "$source_dir/comfy" ]; then
  echo "no full ComfyUI at $source_dir: set COMFYUI_SOURCE to a ComfyUI checkout (v0.3.64 or newer)" >&2
  exit 1
fi

want="$(sha256sum < tests/requirements.txt | cut -c1-16)-${torch_pins[*]}"
if [ ! -f .venv/.e4e-stamp ] || [ "$(cat .venv/.e4e-stamp)" != "$want" ]; then
  echo "== setting up .venv"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "${torch_pins[@]}"
  .venv/bin/python -m pip install -q -r tests/requirements.txt
  echo "$want" > .venv/.e4e-stamp
fi

# the host copy: the source may be read-only, and the tests write into their own base folders
if [ ! -f "$host_copy/.e4e-copied" ] || [ "$(cat "$host_copy/.e4e-copied")" != "$(sha256sum < "$source_dir/comfyui_version.py")" ]; then
  rm -rf "$host_copy"
  mkdir -p "$(dirname "$host_copy")"
  cp -r "$source_dir" "$host_copy"
  chmod -R u+w "$host_copy"
  sha256sum < "$source_dir/comfyui_version.py" > "$host_copy/.e4e-copied"
fi

frontend=$root/.comfyui/frontend-$newest_frontend
if [ ! -f "$frontend/index.html" ]; then
  echo "== the newest editor frontend ($newest_frontend) from PyPI"
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps -d "$tmp" "comfyui-frontend-package==$newest_frontend"
  .venv/bin/python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$tmp"/*.whl "$tmp/x"
  rm -rf "$frontend"
  mv "$tmp/x/comfyui_frontend_package/static" "$frontend"
  rm -rf "$tmp"
fi

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the editor tests"
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "chromium is needed for the editor tests: install it (Debian: apt-get install chromium)" >&2
    exit 1
  fi
fi

.venv/bin/ruff check .
echo "== the suite on a full ComfyUI ($(sed -n 's/^__version__ = //p' "$host_copy/comfyui_version.py"))"
OMP_NUM_THREADS=${E4E_TORCH_THREADS:-1} COMFYUI_PATH=$host_copy E4E_NEWEST_FRONTEND=$frontend E4E_NO_SKIPS=1 \
  .venv/bin/python -m pytest "$@"
