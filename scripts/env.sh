# Source from the repository root after `make test` or `make demo`: activates .venv and the workspace.
# shellcheck shell=bash
_dl_root=$(pwd)
if [ ! -f "$_dl_root/.venv/bin/activate" ] || [ ! -f "$_dl_root/install/setup.bash" ]; then
  echo "scripts/env.sh: run 'make test' or 'make demo' first (no .venv or install/ here)" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_dl_root/.venv/bin/activate"
export AMENT_PREFIX_PATH=$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
_dl_u=$(set +o | grep nounset); set +u
[ -f "$_dl_root/build/compat_ws/install/setup.bash" ] && source "$_dl_root/build/compat_ws/install/setup.bash"
source "$_dl_root/install/setup.bash"
eval "$_dl_u"
export PATH=$_dl_root/install/demand_layering_ros/lib/demand_layering_ros:$PATH
# Keep DDS on this machine unless the user already chose otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
unset _dl_root _dl_u
