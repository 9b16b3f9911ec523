#!/usr/bin/env bash
# Create .venv, install the pinned requirements, and build the workspace (vision_msgs stand-in where
# the real package is missing, then this package). Idempotent: a second run only checks stamps.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${PYTHON:-python3}
venv=$root/.venv

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating .venv with $($py --version)"
  "$py" -m venv "$venv"
fi
stamp=$venv/.requirements.stamp
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
  echo "[setup] installing pinned requirements (first run: a few minutes, about 6 GB)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$venv/bin/python" -m pip check >/dev/null 2>&1 || true
  "$venv/bin/python" -c "import rclpy, torch, torchvision, rosbags, safetensors" \
    || { echo "[setup] requirements did not install" >&2; exit 1; }
  rm -f "$venv/.cmake-fixed"
  cp requirements.txt "$stamp"
fi

# The ROS wheels' CMake exports name the wheel build machine's include directories.
if [ ! -f "$venv/.cmake-fixed" ]; then
  "$venv/bin/python" scripts/fix_cmake_paths.py "$venv"
  touch "$venv/.cmake-fixed"
fi

export VIRTUAL_ENV=$venv
export PATH=$venv/bin:$PATH
export AMENT_PREFIX_PATH=$venv

# vision_msgs: use the distro's when importable, otherwise build the wire-compatible stand-in.
compat_ws=$root/build/compat_ws
if ! python -c "import vision_msgs.msg" >/dev/null 2>&1 || [ -d "$compat_ws/install/vision_msgs" ]; then
  src_sum=$(cat compat/vision_msgs/CMakeLists.txt compat/vision_msgs/package.xml compat/vision_msgs/msg/*.msg | md5sum | cut -d' ' -f1)
  if [ ! -f "$compat_ws/.stamp" ] || [ "$(cat "$compat_ws/.stamp")" != "$src_sum" ]; then
    echo "[setup] building vision_msgs stand-in (no distro vision_msgs found)"
    rm -rf "$compat_ws"
    mkdir -p "$compat_ws/src"
    cp -r compat/vision_msgs "$compat_ws/src/vision_msgs"
    rm -f "$compat_ws/src/vision_msgs/COLCON_IGNORE"
    (cd "$compat_ws" && colcon --log-base log build --event-handlers console_direct- \
        --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" >build.log 2>&1) \
      || { tail -40 "$compat_ws/build.log" >&2; exit 1; }
    echo "$src_sum" > "$compat_ws/.stamp"
  fi
fi

# This package (ament_python), symlink-installed so edits need no rebuild.
pkg_sum=$(cat setup.py setup.cfg package.xml | md5sum | cut -d' ' -f1)
if [ ! -f "$root/install/.stamp" ] || [ "$(cat "$root/install/.stamp")" != "$pkg_sum" ]; then
  echo "[setup] building demand_layering_ros"
  set +u
  [ -f "$compat_ws/install/setup.bash" ] && source "$compat_ws/install/setup.bash"
  set -u
  mkdir -p build   # absent where the distro's vision_msgs made the stand-in's build unneeded
  colcon --log-base build/log build --base-paths "$root" --build-base build/pkg --install-base install \
      --symlink-install --event-handlers console_direct- >build/colcon.log 2>&1 \
    || { tail -40 build/colcon.log >&2; exit 1; }
  echo "$pkg_sum" > "$root/install/.stamp"
fi
echo "[setup] ready: source scripts/env.sh for a shell in this environment"
