#!/usr/bin/env bash
# make dist and the version scheme (packaging/version.sh), in a scratch clone
# of this repository (its tags stay there):
#   - an untagged commit gives <VERSION>~dev<N>.g<commit>, a changed tracked
#     file adds .dirty, the commit tagged v<VERSION> gives <VERSION>;
#   - dpkg and rpm order 0.1.0 < <VERSION>~dev... < <VERSION>;
#   - make dist writes the .deb, the .rpm and the tarball of that version and
#     SHA256SUMS-<version> that verifies them; a second make dist gives the
#     same bytes; the tarball holds the binaries, conf files, man page,
#     templates and LICENSE.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin
fail() { echo "62-dist: FAIL: $*" >&2; exit 1; }
pkg=zabbix-agent2-plugin-tcpstatus

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q --no-local . "$work/repo" 2>/dev/null || git clone -q . "$work/repo"
cd "$work/repo"
git -c user.name=t -c user.email=t@t.invalid commit -q --allow-empty -m "scratch commit" # never tagged upstream
v=$(tr -d ' \n' < VERSION)
sha=$(git rev-parse --short=7 HEAD)

dev=$(bash packaging/version.sh)
[[ $dev =~ ^${v//./\\.}~dev[0-9]+\.g$sha$ ]] || fail "untagged commit: version $dev"
echo "# changed" >> README.md
[ "$(bash packaging/version.sh)" = "$dev.dirty" ] || fail "changed tree: $(bash packaging/version.sh)"
git checkout -q README.md
git tag "v$v"
[ "$(bash packaging/version.sh)" = "$v" ] || fail "tagged commit: $(bash packaging/version.sh)"
git tag -d "v$v" >/dev/null
dpkg --compare-versions 0.1.0 lt "$dev" && dpkg --compare-versions "$dev" lt "$v" || fail "dpkg order 0.1.0 < $dev < $v"
[ "$(rpm --eval "%{lua: print(rpm.vercmp('0.1.0', '$dev'))}")" = -1 ] &&
  [ "$(rpm --eval "%{lua: print(rpm.vercmp('$dev', '$v'))}")" = -1 ] || fail "rpm order 0.1.0 < $dev < $v"
echo "version: $dev (untagged), $dev.dirty (changed), $v (tagged v$v)"

OUT="$work/d1" make -s dist > "$work/d1.list"
OUT="$work/d2" make -s dist > /dev/null
sums=$work/d1/SHA256SUMS-$dev
[ -f "$sums" ] || fail "no $sums: $(cat "$work/d1.list")"
arch=$(dpkg --print-architecture)
for f in "${pkg}_${dev}_$arch.deb" "$pkg-$dev-1.$(uname -m).rpm" "$pkg-$dev-linux-$(go env GOARCH).tar.gz"; do
  grep -q "  $f\$" "$sums" || fail "$f not in $sums"
done
[ "$(wc -l < "$sums")" = 3 ] || fail "$sums: $(cat "$sums")"
(cd "$work/d1" && sha256sum -c --quiet "SHA256SUMS-$dev") || fail "sha256sum -c"
cmp "$sums" "$work/d2/SHA256SUMS-$dev" || fail "make dist is not reproducible"
[ "$(dpkg-deb -f "$work/d1/${pkg}_${dev}_$arch.deb" Version)" = "$dev" ] || fail "deb version"
[ "$(rpm -qp --qf '%{VERSION}' "$work/d1/$pkg-$dev-1.$(uname -m).rpm")" = "$dev" ] || fail "rpm version"
top=$pkg-$dev-linux-$(go env GOARCH)
list=$(tar tzf "$work/d1/$top.tar.gz")
for f in bin/zabbix-agent2-plugin-tcpstatus bin/tcpstatus-discovery conf/tcpstatus.conf \
  conf/userparameter_tcpstatus.conf man/tcpstatus-discovery.1 templates/tcpstatus_agent2.xml LICENSE README.md; do
  grep -qx "$top/$f" <<<"$list" || fail "$f not in the tarball"
done
tar xzf "$work/d1/$top.tar.gz" -C "$work" "$top/bin/zabbix-agent2-plugin-tcpstatus"
[ "$("$work/$top/bin/zabbix-agent2-plugin-tcpstatus" -V | awk 'NR == 1 {print $2}')" = "$v" ] || fail "tarball plugin -V"
cat "$sums"
echo "62-dist: make dist gives the .deb, .rpm and tarball of $dev with verified, reproducible SHA-256 sums"
