#!/usr/bin/env bash
# The tests, from a fresh clone, in one command (this is what CI runs):
#
#     bash scripts/run_tests.sh            # extra arguments go to pytest, e.g. -k transfer -x
#
# Sets up, once, two environments and runs the suite on both ComfyUI hosts:
#   .venv           the 2024 ComfyUI core from PyPI (notcomfy 0.1.0): the core suite, marked "not full_host";
#   .venv-comfyui   a full ComfyUI (a copy of $COMFYUI_SOURCE, default ../shared/host/ComfyUI, in .comfyui/):
#                   the whole suite, real server, workflows through ComfyUI's own validation, the editor in
#                   headless Chromium. No test may be skipped in either run.
# Without a full ComfyUI at $COMFYUI_SOURCE only the core suite runs (and says so); E4E_REQUIRE_FULL_HOST=1 makes
# that an error (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source_dir=${COMFYUI_SOURCE:-$root/../shared/host/ComfyUI}
host_copy=$root/.comfyui/ComfyUI
torch_pins=(torch==2.14.1 torchvision==0.29.1)  # local wheels on the project's machines; any other is a big download

stamp() { sha256sum < "$1" | cut -c1-16; }

make_venv() {  # make_venv DIR REQUIREMENTS [--notcomfy]
  local dir=$1 reqs=$2 want
  want="$(stamp "$reqs")-${torch_pins[*]}-${3:-}"
  if [ -f "$dir/.e4e-stamp" ] && [ "$(cat "$dir/.e4e-stamp")" = "$want" ]; then return; fi
  echo "== setting up $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip
  "$dir/bin/python" -m pip install -q "${torch_pins[@]}"
  if [ "${3:-}" = --notcomfy ]; then
    # the real ComfyUI core, without its declared heavy dependencies (the core's real ones are in $reqs)
    "$dir/bin/python" -m pip install -q --no-deps notcomfy==0.1.0
  fi
  "$dir/bin/python" -m pip install -q -r "$reqs"
  echo "$want" > "$dir/.e4e-stamp"
}

full_host=0
if [ -f "$source_dir/main.py" ] && [ -d "$source_dir/comfy" ]; then
  full_host=1
elif [ "${E4E_REQUIRE_FULL_HOST:-0}" = 1 ]; then
  echo "no full ComfyUI at $source_dir (set COMFYUI_SOURCE); this run requires one" >&2
  exit 1
fi

make_venv .venv tests/requirements.txt --notcomfy
.venv/bin/ruff check .
echo "== the core suite on the 2024 ComfyUI core (notcomfy)"
E4E_NO_SKIPS=1 .venv/bin/python -m pytest -m "not full_host" "$@"

if [ "$full_host" = 0 ]; then
  echo "== no full ComfyUI at $source_dir: the full-host suite (server, workflows, editor) did not run"
  exit 0
fi
make_venv .venv-comfyui tests/requirements-host.txt
if [ ! -f "$host_copy/.e4e-copied" ] || [ "$source_dir/comfyui_version.py" -nt "$host_copy/.e4e-copied" ]; then
  rm -rf "$host_copy"
  mkdir -p "$(dirname "$host_copy")"
  cp -r "$source_dir" "$host_copy"  # the source may be read-only; the tests write into their own base folders
  chmod -R u+w "$host_copy"
  touch "$host_copy/.e4e-copied"
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the editor test"
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "chromium is needed for the editor test: install it (Debian: apt-get install chromium)" >&2
    exit 1
  fi
fi
echo "== the whole suite on a full ComfyUI ($(sed -n 's/^__version__ = //p' "$host_copy/comfyui_version.py"))"
COMFYUI_PATH=$host_copy E4E_COMFY_PYTHON=$root/.venv-comfyui/bin/python E4E_NO_SKIPS=1 \
  .venv-comfyui/bin/python -m pytest "$@"
