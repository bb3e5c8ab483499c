# shellcheck shell=bash
# Shared by scripts/build, scripts/serve, scripts/test and scripts/python: install what is
# missing (Debian packages, the torch venv, the Python test packages), then build. Sourced, not
# run. Honours RESPAWN_BUILD_DIR (default: build), RESPAWN_JOBS (default: 2), RESPAWN_CACHE
# (default: ~/.cache/respawn, where the torch venv lives) and, when a build dir is first
# configured, RESPAWN_BUILD_TYPE (default: RelWithDebInfo) and RESPAWN_CMAKE_ARGS (more -D
# options).

RESPAWN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESPAWN_BUILD_DIR="${RESPAWN_BUILD_DIR:-$RESPAWN_ROOT/build}"
RESPAWN_JOBS="${RESPAWN_JOBS:-2}"

# The one PyTorch everything uses: the worker's libtorch (the wheel's, a CUDA 13.0 build that also
# runs on cpu), scripts/make_models.py and the benchmarks. It lives in a venv outside the
# checkout, keyed by the version, so every clone on the machine reuses it (docs/gpu.md).
RESPAWN_TORCH_VERSION=2.11.0
RESPAWN_CACHE="${RESPAWN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/respawn}"
# $RESPAWN_VENV names a venv of your own instead: used as it is (it must hold this torch), never
# installed into or removed.
RESPAWN_OWN_VENV="${RESPAWN_VENV:+1}"
RESPAWN_VENV="${RESPAWN_VENV:-$RESPAWN_CACHE/torch-$RESPAWN_TORCH_VERSION}"
RESPAWN_PYTHON="$RESPAWN_VENV/bin/python"

# Debian bookworm packages (libtorch comes from the venv, not from Debian).
RESPAWN_PACKAGES=(
  cmake g++ make ccache python3 python3-venv
  libboost1.81-dev nlohmann-json3-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
  googletest libgtest-dev pkg-config libpcre2-dev libicu-dev libsentencepiece-dev
  haproxy  # tests/python/test_haproxy.py (deploy/haproxy)
  chromium chromium-driver  # tests/python/test_status_page.py (the status page in a browser)
)

respawn_install_deps() {
  local missing=()
  for pkg in "${RESPAWN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "respawn: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

# Whether $RESPAWN_PYTHON imports torch $RESPAWN_TORCH_VERSION.
respawn_venv_has_torch() {
  "$RESPAWN_PYTHON" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != sys.argv[1])' \
    "$RESPAWN_TORCH_VERSION"
}

# respawn_install_torch: makes $RESPAWN_VENV hold torch==$RESPAWN_TORCH_VERSION from PyPI, once
# per machine. A venv is complete only once its stamp is written, so an interrupted install is
# redone; a lock keeps two scripts from installing at the same time.
respawn_install_torch() {
  local stamp="$RESPAWN_VENV/.respawn-torch-$RESPAWN_TORCH_VERSION"
  [ -f "$stamp" ] && [ -x "$RESPAWN_PYTHON" ] && return 0
  if [ -n "$RESPAWN_OWN_VENV" ]; then
    respawn_venv_has_torch && return 0
    echo "respawn: RESPAWN_VENV=$RESPAWN_VENV has no torch==$RESPAWN_TORCH_VERSION" >&2
    return 1
  fi
  mkdir -p "$RESPAWN_CACHE"
  (
    flock 9
    [ -f "$stamp" ] && [ -x "$RESPAWN_PYTHON" ] && exit 0
    echo "respawn: installing torch==$RESPAWN_TORCH_VERSION into $RESPAWN_VENV" >&2
    rm -rf "$RESPAWN_VENV"
    python3 -m venv "$RESPAWN_VENV" >&2
    "$RESPAWN_PYTHON" -m pip install --quiet --no-input "torch==$RESPAWN_TORCH_VERSION" >&2
    respawn_venv_has_torch
    touch "$stamp"
  ) 9>"$RESPAWN_CACHE/torch-$RESPAWN_TORCH_VERSION.lock"
}

# What the Python tests (tests/python/, run by ctest) and the Python benchmarks need besides
# torch, pinned. tritonclient[http] brings numpy, geventhttpclient and aiohttp (for
# tritonclient.http.aio); torchvision builds the resnet18 of scripts/make_image_model.py and must
# be the release that goes with the pinned torch; PyYAML reads deploy/kubernetes in
# tests/python/test_deploy_manifests.py; selenium drives Debian's chromium in
# tests/python/test_status_page.py.
RESPAWN_PY_TEST_PACKAGES=("tritonclient[http]==2.73.0" "openai==3.57.0" "torchvision==0.26.0"
                          "PyYAML==6.0.3" "selenium==4.27.1")

# respawn_install_test_packages: installs RESPAWN_PY_TEST_PACKAGES into $RESPAWN_VENV once, under
# the torch install's lock, behind a stamp named after the pins (a pin change installs again).
# Into a venv of your own ($RESPAWN_VENV) nothing is installed: the tests that need a missing
# package report themselves skipped.
respawn_install_test_packages() {
  [ -n "$RESPAWN_OWN_VENV" ] && return 0
  local key
  key="$(printf '%s\n' "${RESPAWN_PY_TEST_PACKAGES[@]}" | sha256sum | cut -c1-16)"
  local stamp="$RESPAWN_VENV/.respawn-test-packages-$key"
  [ -f "$stamp" ] && [ -x "$RESPAWN_PYTHON" ] && return 0
  respawn_install_torch
  (
    flock 9
    [ -f "$stamp" ] && exit 0
    echo "respawn: installing ${RESPAWN_PY_TEST_PACKAGES[*]} into $RESPAWN_VENV" >&2
    rm -f "$RESPAWN_VENV"/.respawn-test-packages-*
    # torch is named too, so that pip keeps the pinned one rather than resolve another.
    "$RESPAWN_PYTHON" -m pip install --quiet --no-input --disable-pip-version-check \
      "torch==$RESPAWN_TORCH_VERSION" "${RESPAWN_PY_TEST_PACKAGES[@]}" >&2
    respawn_venv_has_torch
    touch "$stamp"
  ) 9>"$RESPAWN_CACHE/torch-$RESPAWN_TORCH_VERSION.lock"
}

# Where CMake finds the venv's libtorch (TorchConfig.cmake).
respawn_torch_prefix() {
  "$RESPAWN_PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)'
}

# respawn_build [targets...]: install what is missing, configure once, then build the given
# targets (default: all).
respawn_build() {
  respawn_install_deps
  respawn_install_torch
  if [ ! -f "$RESPAWN_BUILD_DIR/CMakeCache.txt" ]; then
    # shellcheck disable=SC2086  # RESPAWN_CMAKE_ARGS is a list of words
    cmake -S "$RESPAWN_ROOT" -B "$RESPAWN_BUILD_DIR" \
      -DCMAKE_BUILD_TYPE="${RESPAWN_BUILD_TYPE:-RelWithDebInfo}" \
      -DCMAKE_PREFIX_PATH="$(respawn_torch_prefix)" -DRESPAWN_PYTHON="$RESPAWN_PYTHON" \
      ${RESPAWN_CMAKE_ARGS:-} >&2
  fi
  local args=()
  for t in "$@"; do args+=(--target "$t"); done
  cmake --build "$RESPAWN_BUILD_DIR" -j "$RESPAWN_JOBS" "${args[@]}" >&2
}
