# zabbix-agent2-plugin-tcpstatus
GO      ?= go
VERSION ?= $(shell cat VERSION 2>/dev/null || echo 0.0.0)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X zabbix-agent2-plugin-tcpstatus/internal/version.Version=$(VERSION) -X zabbix-agent2-plugin-tcpstatus/internal/version.Commit=$(COMMIT)
export CGO_ENABLED ?= 0

.PHONY: build test ci lint generate bench clean deb rpm dist

build: bin/zabbix-agent2-plugin-tcpstatus bin/tcpstatus-discovery

bin/zabbix-agent2-plugin-tcpstatus: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./plugin

bin/tcpstatus-discovery: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./discovery

# Unprivileged and short: vet and the unit, fixture and fuzz-seed tests
# (namespace and real-agent tests skip without root; -short starts no agent).
test:
	$(GO) vet ./...
	$(GO) test -short ./...

# What CI runs (.ci/run): README's test command. Root (it re-runs itself
# through sudo), installs the test dependencies, runs everything.
ci:
	bash scripts/test.sh

# gofmt, go vet, the generated files up to date, the templates' linter.
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./tools/readmegen -check
	$(GO) run ./templates/gen -check
	$(GO) run ./templates/lint -official testdata/official-templates templates/*.xml

# Rewrite what is generated from the code: README's key, state and option
# tables (go generate), the templates and their READMEs.
generate:
	$(GO) generate ./...
	$(GO) run ./templates/gen

# The in-process Go benchmarks (parsers, the walk, the cache; socket-table
# ones build 10k sockets in a namespace as root). The whole BENCHMARKS.md
# run is `sudo bash scripts/bench.sh`.
bench:
	$(GO) test -short -run '^$$' -bench . -benchmem ./internal/...

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
