#!/usr/bin/env bash
# Installs the package contents listed in packaging/files.list into a staging
# root, for one package format. Used by scripts/build-deb.sh and
# scripts/build-rpm.sh, so that both packages are built from one description.
#
#   bash packaging/stage.sh deb|rpm ROOT LIST
#
# ROOT is created; LIST receives one line per installed file:
# "<kind> <mode> <path>" (path absolute, as installed). Run from the
# repository root. Configuration files are rewritten for the format: the
# plugin's System.Path names the format's plugin path, every call of
# tcpstatus-discovery names the format's helper path, and paths of the .deb
# named in them become the format's paths.
set -euo pipefail

fmt=${1:?format: deb or rpm}
root=${2:?staging root}
list=${3:?list file}
manifest=packaging/files.list

die() { echo "stage: $*" >&2; exit 1; }
case $fmt in deb|rpm) ;; *) die "unknown format $fmt" ;; esac
[ -f "$manifest" ] || die "$manifest missing (run from the repository root)"

mkdir -p "$root"
: > "$list"

# entries: kind mode source destination-for-this-format deb-destination
entries=()
while read -r kind mode src deb rpm rest; do
  case $kind in ''|'#'*) continue ;; esac
  [ -n "$deb" ] && [ -n "$rpm" ] && [ -z "$rest" ] || die "$manifest: bad line: $kind $mode $src $deb $rpm $rest"
  [ "$rpm" = "=" ] && rpm=$deb
  case $kind in bin|conf|file|man|doc|license) ;; *) die "$manifest: unknown kind $kind" ;; esac
  [[ $mode =~ ^0[0-7]{3}$ ]] || die "$manifest: bad mode $mode for $src"
  if [ "$fmt" = deb ]; then dest=$deb; else dest=$rpm; fi
  entries+=("$kind $mode $src $dest $deb")
done < "$manifest"

# The format's plugin and helper paths, for the configuration files.
plugin_path= helper_path=
for e in "${entries[@]}"; do
  read -r kind _ src dest _ <<<"$e"
  [ "$kind" = bin ] || continue
  case ${src##*/} in
    zabbix-agent2-plugin-tcpstatus) plugin_path=$dest ;;
    tcpstatus-discovery) helper_path=$dest ;;
  esac
done
[ -n "$plugin_path" ] && [ -n "$helper_path" ] || die "$manifest lists no plugin or no helper binary"

# sed program turning .deb paths into this format's paths (rpm only).
relocate=()
if [ "$fmt" = rpm ]; then
  for e in "${entries[@]}"; do
    read -r _ _ _ dest deb <<<"$e"
    [ "$deb" != - ] && [ "$deb" != "$dest" ] && [ "${deb%/}" = "$deb" ] || continue
    relocate+=(-e "s#$deb#$dest#g")
  done
fi

put() { # kind mode source destination
  local kind=$1 mode=$2 src=$3 dest=$4
  if [ "$kind" = bin ]; then
    [ -x "$src" ] || die "$src missing: run make build"
    # Static (CGO_ENABLED=0, the Makefile's default): the packages declare
    # no library dependency.
    if command -v file >/dev/null && file -L "$src" | grep -q 'dynamically linked'; then
      die "$src is dynamically linked; build with CGO_ENABLED=0"
    fi
  fi
  [ -f "$src" ] || die "$src missing"
  install -d "$root$(dirname "$dest")"
  case $kind in
    man)
      [[ $dest == *.gz ]] || die "man page destination $dest must end in .gz"
      gzip -9n < "$src" > "$root$dest"
      ;;
    conf)
      sed -E -e "s#^([[:space:]]*Plugins\.TCPStatus\.System\.Path[[:space:]]*=[[:space:]]*).*#\1$plugin_path#" \
        -e "s#(^|[[:space:],=])[^[:space:],=]*/tcpstatus-discovery([[:space:]]|\$)#\1$helper_path\2#g" \
        ${relocate[@]+"${relocate[@]}"} "$src" > "$root$dest"
      ;;
    *)
      cp "$src" "$root$dest"
      ;;
  esac
  chmod "$mode" "$root$dest"
  echo "$kind $mode $dest" >> "$list"
}

for e in "${entries[@]}"; do
  read -r kind mode src dest _ <<<"$e"
  [ "$dest" = - ] && continue
  if [[ $src == *[*?]* ]]; then
    [[ $dest == */ ]] || die "$src is a glob: its destination must be a directory ending in /"
    shopt -s nullglob
    matches=($src)
    shopt -u nullglob
    [ ${#matches[@]} -gt 0 ] || die "$src matches no file"
    for m in "${matches[@]}"; do put "$kind" "$mode" "$m" "$dest${m##*/}"; done
  else
    put "$kind" "$mode" "$src" "$dest"
  fi
done

# Checks: the plugins.d file loads this format's plugin, the UserParameters
# call this format's helper.
for e in "${entries[@]}"; do
  read -r kind _ src dest _ <<<"$e"
  [ "$kind" = conf ] || continue
  case ${src##*/} in
    tcpstatus.conf) grep -qx "Plugins.TCPStatus.System.Path=$plugin_path" "$root$dest" ||
      die "$dest does not set Plugins.TCPStatus.System.Path=$plugin_path" ;;
    userparameter_*.conf) grep -q "^UserParameter=.*,$helper_path " "$root$dest" ||
      die "$dest does not call $helper_path" ;;
  esac
done
