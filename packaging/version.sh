#!/usr/bin/env bash
# Prints the version of the packages and the release tarball, from VERSION
# and git:
#
#   <VERSION>                    HEAD is the commit tagged v<VERSION>, with no
#                                change to tracked files (a release build);
#   <VERSION>~dev<N>.g<commit>   any other commit: N commits after the last
#                                v* tag (all commits when there is none);
#                                ".dirty" is added when tracked files differ
#                                from HEAD.
#
# "~" sorts before the release in dpkg and rpm alike, so a development build
# of 0.2.0 upgrades 0.1.0 and is upgraded by 0.2.0. Outside a git checkout
# (an unpacked source tarball) the version is VERSION alone. The binaries'
# -V prints VERSION and the commit (Makefile).
set -euo pipefail
cd "$(dirname "$0")/.."
v=$(tr -d ' \n' < VERSION)
[[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version: VERSION '$v' is not MAJOR.MINOR.PATCH" >&2; exit 1; }
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "$v"
  exit 0
fi
dirty=
git diff --quiet HEAD -- 2>/dev/null || dirty=.dirty
if [ -z "$dirty" ] && [ "$(git rev-parse -q --verify "refs/tags/v$v^{commit}" 2>/dev/null)" = "$(git rev-parse HEAD)" ]; then
  echo "$v"
  exit 0
fi
if last=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null); then
  n=$(git rev-list --count "$last..HEAD")
else
  n=$(git rev-list --count HEAD)
fi
echo "$v~dev$n.g$(git rev-parse --short=7 HEAD)$dirty"
