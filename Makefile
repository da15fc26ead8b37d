# zabbix-agent2-plugin-tcpstatus
GO      ?= go
VERSION ?= $(shell cat VERSION 2>/dev/null || echo 0.0.0)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X zabbix-agent2-plugin-tcpstatus/internal/version.Version=$(VERSION) -X zabbix-agent2-plugin-tcpstatus/internal/version.Commit=$(COMMIT)
export CGO_ENABLED ?= 0

.PHONY: build test clean deb

build: bin/zabbix-agent2-plugin-tcpstatus bin/tcpstatus-discovery

bin/zabbix-agent2-plugin-tcpstatus: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./plugin

bin/tcpstatus-discovery: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./discovery

test:
	bash scripts/test.sh

# Debian package in dist/ (dpkg-deb; no network)
deb: build
	bash scripts/build-deb.sh

clean:
	rm -rf bin dist

FORCE:
