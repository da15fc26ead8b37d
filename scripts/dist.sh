#!/usr/bin/env bash
# make dist: the release files in dist/ for the binaries in bin/ (make build):
#
#   zabbix-agent2-plugin-tcpstatus_<version>_<debarch>.deb    scripts/build-deb.sh
#   zabbix-agent2-plugin-tcpstatus-<version>-1.<rpmarch>.rpm  scripts/build-rpm.sh
#   zabbix-agent2-plugin-tcpstatus-<version>-linux-<goarch>.tar.gz
#       the binaries, conf/tcpstatus.conf, the UserParameter conf, the man
#       page, the templates, LICENSE, README.md and CHANGELOG.md
#   SHA256SUMS-<version>                                       sha256sum of the three
#
# <version> is packaging/version.sh's (VERSION on the commit tagged
# v<VERSION>, else <VERSION>~dev<N>.g<commit>). Reproducible: file times are
# SOURCE_DATE_EPOCH (default: the last commit's time).
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=zabbix-agent2-plugin-tcpstatus
version=$(bash packaging/version.sh)
out=${OUT:-dist}
export PKG_VERSION=$version OUT=$out
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
goarch=$(go env GOARCH 2>/dev/null || echo amd64)

deb=$(bash scripts/build-deb.sh)
rpm=$(bash scripts/build-rpm.sh)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
top=$pkg-$version-linux-$goarch
d=$work/$top
install -D -m 0755 bin/zabbix-agent2-plugin-tcpstatus "$d/bin/zabbix-agent2-plugin-tcpstatus"
install -D -m 0755 bin/tcpstatus-discovery "$d/bin/tcpstatus-discovery"
install -D -m 0644 conf/tcpstatus.conf "$d/conf/tcpstatus.conf"
install -D -m 0644 conf/userparameter_tcpstatus.conf "$d/conf/userparameter_tcpstatus.conf"
install -D -m 0644 packaging/man/tcpstatus-discovery.1 "$d/man/tcpstatus-discovery.1"
install -d "$d/templates"
install -m 0644 templates/*.xml templates/*.md "$d/templates/"
install -m 0644 LICENSE README.md CHANGELOG.md "$d/"
tgz=$out/$top.tar.gz
tar -C "$work" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -cf - "$top" | gzip -9n > "$tgz"

sums=$out/SHA256SUMS-$version
(cd "$out" && sha256sum "${deb##*/}" "${rpm##*/}" "${tgz##*/}") > "$sums"
(cd "$out" && sha256sum -c --quiet "${sums##*/}")
printf '%s\n' "$deb" "$rpm" "$tgz" "$sums"
