#!/usr/bin/env bash
# Builds dist/zabbix-agent2-plugin-tcpstatus-<version>-1.<arch>.rpm for the
# RHEL 8/9 family from the binaries in bin/ (make build) with rpmbuild
# (Debian's rpm package): no network, no root needed. The contents come from
# packaging/files.list (shared with scripts/build-deb.sh), installed by
# packaging/stage.sh; conf entries are %config(noreplace), doc entries %doc,
# license entries %license. The spec is packaging/rpm/spec.in with the
# scriptlets' shared functions (packaging/scripts/agents.sh) inlined.
#
# Environment: PKG_VERSION (default: packaging/version.sh), RPM_ARCH
# (default: from GOARCH), RPM_PACKAGER, OUT (output directory, default dist),
# SOURCE_DATE_EPOCH (default: last commit time).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=zabbix-agent2-plugin-tcpstatus
version=${PKG_VERSION:-$(bash packaging/version.sh)}
out=${OUT:-dist}
packager=${RPM_PACKAGER:-${DEB_MAINTAINER:-TCPStatus maintainers <tcpstatus@localhost>}}
homepage=${DEB_HOMEPAGE:-https://localhost/zabbix-agent2-plugin-tcpstatus}

die() { echo "build-rpm: $*" >&2; exit 1; }

command -v rpmbuild >/dev/null || die "rpmbuild missing: apt-get install rpm (scripts/install-deps.sh installs it)"
# rpm versions may not hold "-"; "~" sorts before the release as in dpkg.
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "version '$version' is not an rpm version"
if [ -z "${RPM_ARCH:-}" ]; then
  goarch=$(go env GOARCH 2>/dev/null || dpkg --print-architecture)
  case $goarch in
    amd64) RPM_ARCH=x86_64 ;;
    arm64) RPM_ARCH=aarch64 ;;
    ppc64le|ppc64el) RPM_ARCH=ppc64le ;;
    s390x) RPM_ARCH=s390x ;;
    *) die "no RHEL architecture for GOARCH $goarch; set RPM_ARCH" ;;
  esac
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
bash packaging/stage.sh rpm "$stage" "$work/files"

# %files: every staged file with its mode, owned by root, and the directories
# that are the package's own.
{
  while read -r kind mode path; do
    case $kind in
      conf) echo "%config(noreplace) %attr($mode,root,root) $path" ;;
      doc) echo "%doc %attr($mode,root,root) $path" ;;
      license) echo "%license %attr($mode,root,root) $path" ;;
      *) echo "%attr($mode,root,root) $path" ;;
    esac
  done < "$work/files"
  awk '{print $3}' "$work/files" | while read -r path; do
    d=$(dirname "$path")
    while [ "$d" != / ]; do
      case $d in
        */zabbix-agent2-plugin|*/zabbix-agent2-plugin-tcpstatus|*/zabbix-agent2-plugin-tcpstatus/*|*/zabbix-agent2.service.d)
          echo "%dir %attr(0755,root,root) $d" ;;
      esac
      d=$(dirname "$d")
    done
  done | sort -u
} > "$work/files.spec"

sed -e "s|@VERSION@|$version|" -e "s|@HOMEPAGE@|$homepage|" -e "s|@MAINTAINER@|$packager|" \
  -e "s|@STAGE@|$stage|" packaging/rpm/spec.in |
  awk -v agents=packaging/scripts/agents.sh -v files="$work/files.spec" '
    /^#AGENTS#$/ { while ((getline l < agents) > 0) print l; close(agents); next }
    /^#FILES#$/ { while ((getline l < files) > 0) print l; next }
    { print }' > "$work/$pkg.spec"
# The scriptlets must parse as POSIX sh.
awk '/^#AGENTS#$/ { while ((getline l < a) > 0) print l; next } { print }' a=packaging/scripts/agents.sh \
  <<<'#AGENTS#' | sh -n || die "packaging/scripts/agents.sh: syntax error"

rpmbuild -bb --quiet --target "$RPM_ARCH-linux" \
  --define "_topdir $work/top" --define "_rpmdir $work/rpms" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  --buildroot "$work/buildroot" "$work/$pkg.spec" >"$work/rpmbuild.log" 2>&1 || {
  cat "$work/rpmbuild.log" >&2
  die "rpmbuild failed"
}
mkdir -p "$out"
rpm=$out/$pkg-$version-1.$RPM_ARCH.rpm
mv "$work/rpms/$pkg-$version-1.$RPM_ARCH.rpm" "$rpm"
echo "$rpm"
