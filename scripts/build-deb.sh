#!/usr/bin/env bash
# Builds dist/zabbix-agent2-plugin-tcpstatus_<VERSION>_<arch>.deb from the
# binaries in bin/ (make build) with dpkg-deb: no network, no root needed.
#
#   plugin    <System.Path of conf/tcpstatus.conf>   (default /usr/libexec/zabbix-agent2-plugins/zabbix-agent2-plugin-tcpstatus)
#   conffile  /etc/zabbix/zabbix_agent2.d/plugins.d/tcpstatus.conf           (conf/tcpstatus.conf)
#   helper    /usr/bin/tcpstatus-discovery
#   conffile  /etc/zabbix/zabbix_agentd.conf.d/userparameter_tcpstatus.conf (scripts/userparameter_tcpstatus.conf)
#   templates /usr/share/zabbix-agent2-plugin-tcpstatus/templates/
#
# Environment: DEB_ARCH (default: from GOARCH), DEB_MAINTAINER, OUT (output
# directory, default dist), SOURCE_DATE_EPOCH (default: last commit time).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=zabbix-agent2-plugin-tcpstatus
version=$(tr -d ' \n' < VERSION)
out=${OUT:-dist}
maintainer=${DEB_MAINTAINER:-TCPStatus maintainers <tcpstatus@localhost>}
homepage=${DEB_HOMEPAGE:-https://localhost/zabbix-agent2-plugin-tcpstatus}
default_plugin_path=/usr/libexec/zabbix-agent2-plugins/zabbix-agent2-plugin-tcpstatus
helper_path=/usr/bin/tcpstatus-discovery

die() { echo "build-deb: $*" >&2; exit 1; }

[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "VERSION '$version' is not a Debian version"
for b in bin/zabbix-agent2-plugin-tcpstatus bin/tcpstatus-discovery; do
  [ -x "$b" ] || die "$b missing: run make build (or make deb)"
done

if [ -z "${DEB_ARCH:-}" ]; then
  goarch=$(go env GOARCH 2>/dev/null || dpkg --print-architecture)
  case $goarch in
    amd64|arm64|riscv64|s390x|ppc64el|mips64el) DEB_ARCH=$goarch ;;
    386) DEB_ARCH=i386 ;;
    arm) DEB_ARCH=armhf ;;
    ppc64le) DEB_ARCH=ppc64el ;;
    *) die "no Debian architecture for GOARCH $goarch; set DEB_ARCH" ;;
  esac
fi
# The binaries must be static (CGO_ENABLED=0, the Makefile's default): the
# package declares no library dependency.
if command -v file >/dev/null && file -L bin/zabbix-agent2-plugin-tcpstatus | grep -q 'dynamically linked'; then
  die "bin/zabbix-agent2-plugin-tcpstatus is dynamically linked; build with CGO_ENABLED=0"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/DEBIAN"

# plugins.d configuration: the repository's conf/tcpstatus.conf when there is
# one (its System.Path says where the binary goes), else a minimal one.
plugin_conf=$root/etc/zabbix/zabbix_agent2.d/plugins.d/tcpstatus.conf
install -d "$(dirname "$plugin_conf")"
if [ -f conf/tcpstatus.conf ]; then
  plugin_path=$(sed -n 's/^[[:space:]]*Plugins\.TCPStatus\.System\.Path[[:space:]]*=[[:space:]]*\([^[:space:]]*\).*/\1/p' conf/tcpstatus.conf | tail -n 1)
  [ -n "$plugin_path" ] || die "conf/tcpstatus.conf has no Plugins.TCPStatus.System.Path line"
  [[ $plugin_path == /* ]] || die "conf/tcpstatus.conf: System.Path $plugin_path is not absolute"
  install -m 0644 conf/tcpstatus.conf "$plugin_conf"
else
  plugin_path=$default_plugin_path
  cat > "$plugin_conf" <<CONF
# TCPStatus loadable plugin for Zabbix agent 2 (package $pkg).
# Options: Plugins.TCPStatus.{ProcRoot,SysRoot,Source,CacheTTL,Timeout};
# see /usr/share/doc/$pkg/.
Plugins.TCPStatus.System.Path=$plugin_path
CONF
  chmod 0644 "$plugin_conf"
fi
install -D -m 0755 bin/zabbix-agent2-plugin-tcpstatus "$root$plugin_path"
install -D -m 0755 bin/tcpstatus-discovery "$root$helper_path"

# UserParameters for the classic agent, calling the helper where the package
# puts it.
up_conf=$root/etc/zabbix/zabbix_agentd.conf.d/userparameter_tcpstatus.conf
install -d "$(dirname "$up_conf")"
if [ -f scripts/userparameter_tcpstatus.conf ]; then
  sed -E "s#(^|[[:space:],=])[^[:space:],=]*/tcpstatus-discovery([[:space:]]|$)#\1$helper_path\2#g" \
    scripts/userparameter_tcpstatus.conf > "$up_conf"
  grep -q "$helper_path" "$up_conf" || die "scripts/userparameter_tcpstatus.conf does not call tcpstatus-discovery"
else
  die "scripts/userparameter_tcpstatus.conf missing"
fi
chmod 0644 "$up_conf"

share=$root/usr/share/$pkg
install -d "$share/templates"
shopt -s nullglob
for f in templates/*.xml templates/*.yaml templates/*.md; do
  install -m 0644 "$f" "$share/templates/"
done
shopt -u nullglob

doc=$root/usr/share/doc/$pkg
install -d "$doc"
for f in README.md CHANGELOG.md docs/TROUBLESHOOTING.md docs/SECURITY.md docs/DESIGN.md; do
  [ -f "$f" ] && install -m 0644 "$f" "$doc/"
done
cat > "$doc/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $pkg
Comment: Built from the $pkg repository; see README.md for the license.

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) The $pkg authors
License: see-readme
 See /usr/share/doc/$pkg/README.md.
COPY
# Go binaries are static by design (no library dependency to declare).
install -D -m 0644 /dev/stdin "$root/usr/share/lintian/overrides/$pkg" <<OVR
$pkg: statically-linked-binary [${helper_path#/}]
$pkg: statically-linked-binary [${plugin_path#/}]
OVR
printf '%s (%s) unstable; urgency=medium\n\n  * Release %s; see CHANGELOG.md.\n\n -- %s  %s\n' \
  "$pkg" "$version" "$version" "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc"/*

# Control area.
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$DEB_ARCH|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@SIZE@|$size|" -e "s|@HOMEPAGE@|$homepage|" packaging/debian/control.in > "$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for s in preinst postinst postrm; do
  # Inline the shared functions: maintainer scripts must stand alone.
  awk -v common=packaging/debian/common.sh '
    /^#COMMON#$/ { while ((getline l < common) > 0) print l; next } { print }' \
    "packaging/debian/$s" > "$root/DEBIAN/$s"
  chmod 0755 "$root/DEBIAN/$s"
  sh -n "$root/DEBIAN/$s" || die "$s: syntax error"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
while read -r cf; do
  [ -f "$root$cf" ] || die "conffile $cf is not in the package"
done < packaging/debian/conffiles

mkdir -p "$out"
deb=$out/${pkg}_${version}_${DEB_ARCH}.deb
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
