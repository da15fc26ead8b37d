# Sourced first thing by scripts/demo.sh and scripts/test.sh (README's two
# commands), which need root:
#
#   . "$(dirname "$0")/as-root.sh" "$0" "$@"
#
# As root it does nothing. Otherwise it runs the script again through sudo,
# handing on the TCPSTATUS_* and CI variables (sudo resets the environment),
# or, when sudo is not installed, says how to run it as root and exits 1.
if [ "$(id -u)" != 0 ]; then
  tcpstatus_script=$(readlink -f "$1")
  shift
  if ! command -v sudo >/dev/null 2>&1; then
    echo "${tcpstatus_script##*/}: needs root, and sudo is not installed: run it as root" \
      "(su -c 'bash $tcpstatus_script'), or install sudo" >&2
    exit 1
  fi
  tcpstatus_env=()
  while IFS= read -r tcpstatus_var; do
    tcpstatus_env+=("$tcpstatus_var=${!tcpstatus_var}")
  done < <(compgen -e | grep -E '^(TCPSTATUS_[A-Z0-9_]*|CI)$' || true)
  echo "${tcpstatus_script##*/}: not root: running it through sudo" >&2
  exec sudo -- env ${tcpstatus_env[@]+"${tcpstatus_env[@]}"} bash "$tcpstatus_script" "$@"
fi
