#!/usr/bin/env bash
# Builds dist/zabbix-agent2-plugin-tcpstatus_<version>_<arch>.deb from the
# binaries in bin/ (make build) with dpkg-deb: no network, no root needed.
# The contents come from packaging/files.list (shared with
# scripts/build-rpm.sh), installed by packaging/stage.sh; its conf entries
# are the conffiles. The maintainer scripts are packaging/debian/* with
# packaging/scripts/agents.sh and packaging/debian/conffiles.sh inlined.
#
# Environment: PKG_VERSION (default: packaging/version.sh), DEB_ARCH
# (default: from GOARCH), DEB_MAINTAINER, OUT (output directory, default
# dist), SOURCE_DATE_EPOCH (default: last commit time).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=zabbix-agent2-plugin-tcpstatus
version=${PKG_VERSION:-$(bash packaging/version.sh)}
out=${OUT:-dist}
maintainer=${DEB_MAINTAINER:-TCPStatus maintainers <tcpstatus@localhost>}
homepage=${DEB_HOMEPAGE:-https://localhost/zabbix-agent2-plugin-tcpstatus}

die() { echo "build-deb: $*" >&2; exit 1; }

[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "version '$version' is not a Debian version"

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
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
bash packaging/stage.sh deb "$root" "$work/files"
mkdir -p "$root/DEBIAN"

plugin_path=$(awk '$1 == "bin" && $3 ~ /\/zabbix-agent2-plugin-tcpstatus$/ {print $3}' "$work/files")
helper_path=$(awk '$1 == "bin" && $3 ~ /\/tcpstatus-discovery$/ {print $3}' "$work/files")
conffiles=$(awk '$1 == "conf" {print $3}' "$work/files")

doc=$root/usr/share/doc/$pkg
install -d "$doc"
{
  cat <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $pkg
Upstream-Contact: $maintainer
Source: $homepage

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) The $pkg authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
 http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
COPY
} > "$doc/copyright"
# Go binaries are static by design (no library dependency to declare). The
# maintainer scripts share their agent restart with the rpm's scriptlets:
# systemctl is called only where deb-systemd-invoke is missing.
install -D -m 0644 /dev/stdin "$root/usr/share/lintian/overrides/$pkg" <<OVR
$pkg: statically-linked-binary [${helper_path#/}]
$pkg: statically-linked-binary [${plugin_path#/}]
# systemctl try-restart only when deb-systemd-invoke is missing (the function
# is shared with the rpm's scriptlets)
$pkg: maintainer-script-calls-systemctl [*]
OVR
printf '%s (%s) unstable; urgency=medium\n\n  * Release %s; see CHANGELOG.md.\n\n -- %s  %s\n' \
  "$pkg" "$version" "$version" "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc"/*

# Control area.
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$DEB_ARCH|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@SIZE@|$size|" -e "s|@HOMEPAGE@|$homepage|" packaging/debian/control.in > "$root/DEBIAN/control"
printf '%s\n' $conffiles > "$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"
for s in preinst postinst postrm; do
  # Inline the shared functions: maintainer scripts must stand alone.
  awk -v agents=packaging/scripts/agents.sh -v conf=packaging/debian/conffiles.sh -v list="$(echo $conffiles)" '
    /^#COMMON#$/ {
      while ((getline l < conf) > 0) { gsub(/@CONFFILES@/, list, l); print l }
      while ((getline l < agents) > 0) print l
      next
    }
    { print }' "packaging/debian/$s" > "$root/DEBIAN/$s"
  chmod 0755 "$root/DEBIAN/$s"
  sh -n "$root/DEBIAN/$s" || die "$s: syntax error"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/${pkg}_${version}_${DEB_ARCH}.deb
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
