# zabbix-agent2-plugin-tcpstatus
GO      ?= go
VERSION ?= $(shell cat VERSION 2>/dev/null || echo 0.0.0)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X zabbix-agent2-plugin-tcpstatus/internal/version.Version=$(VERSION) -X zabbix-agent2-plugin-tcpstatus/internal/version.Commit=$(COMMIT)
export CGO_ENABLED ?= 0

.PHONY: build test clean deb rpm dist

build: bin/zabbix-agent2-plugin-tcpstatus bin/tcpstatus-discovery

bin/zabbix-agent2-plugin-tcpstatus: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./plugin

bin/tcpstatus-discovery: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./discovery

test:
	bash scripts/test.sh

# Packages in dist/, both from packaging/files.list (no network): the .deb
# with dpkg-deb, the .rpm (RHEL 8/9) with rpmbuild. Their version is
# packaging/version.sh's: VERSION on the commit tagged v<VERSION>, else
# <VERSION>~dev<N>.g<commit>.
deb: build
	bash scripts/build-deb.sh

rpm: build
	bash scripts/build-rpm.sh

# Release files in dist/: the .deb, the .rpm, a tarball of the binaries, the
# conf files, the man page, the templates and LICENSE, and SHA256SUMS over
# the three (README, "Releases").
dist: build
	bash scripts/dist.sh

clean:
	rm -rf bin dist

FORCE:
