# Shared by scripts/serve and scripts/test: install what is missing, then build.
# Sourced, not run. Honours RESPAWN_BUILD_DIR (default: build), RESPAWN_JOBS (default: 2) and,
# when a build dir is first configured, RESPAWN_BUILD_TYPE (default: RelWithDebInfo) and
# RESPAWN_CMAKE_ARGS (more -D options).

RESPAWN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESPAWN_BUILD_DIR="${RESPAWN_BUILD_DIR:-$RESPAWN_ROOT/build}"
RESPAWN_JOBS="${RESPAWN_JOBS:-2}"

# Debian bookworm packages. libopenblas0-pthread matters: without it libtorch falls back to
# the reference BLAS (about 10x slower).
RESPAWN_PACKAGES=(
  cmake g++ make ccache python3
  libboost1.81-dev libtorch-dev nlohmann-json3-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
  googletest libgtest-dev libopenblas0-pthread
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

# respawn_build [targets...]: configure once, then build the given targets (default: all).
respawn_build() {
  if [ ! -f "$RESPAWN_BUILD_DIR/CMakeCache.txt" ]; then
    # shellcheck disable=SC2086  # RESPAWN_CMAKE_ARGS is a list of words
    cmake -S "$RESPAWN_ROOT" -B "$RESPAWN_BUILD_DIR" \
      -DCMAKE_BUILD_TYPE="${RESPAWN_BUILD_TYPE:-RelWithDebInfo}" ${RESPAWN_CMAKE_ARGS:-} >&2
  fi
  local args=()
  for t in "$@"; do args+=(--target "$t"); done
  cmake --build "$RESPAWN_BUILD_DIR" -j "$RESPAWN_JOBS" "${args[@]}" >&2
}
