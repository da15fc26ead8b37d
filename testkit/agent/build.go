package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// modulePath is the module the binaries are built from (go.mod).
const modulePath = "zabbix-agent2-plugin-tcpstatus"

// Names of the built binaries under bin/ (Makefile).
const (
	PluginName    = "zabbix-agent2-plugin-tcpstatus"
	DiscoveryName = "tcpstatus-discovery"
)

// EnvPlugin, when set to an absolute path, makes PluginBinary return that
// executable instead of building one (to test an installed package).
const EnvPlugin = "TCPSTATUS_PLUGIN"

type buildResult struct {
	path string
	err  error
}

var (
	buildMu   sync.Mutex
	buildDone = map[string]buildResult{}
)

// PluginBinary builds bin/zabbix-agent2-plugin-tcpstatus from this tree once
// per process, the way `make build` does (same flags and version stamps),
// and returns its absolute path. With $TCPSTATUS_PLUGIN set it returns that
// path instead.
func PluginBinary() (string, error) {
	if p := os.Getenv(EnvPlugin); p != "" {
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("%s=%q is not an absolute path", EnvPlugin, p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", EnvPlugin, err)
		}
		return p, nil
	}
	return buildOnce(PluginName, "./plugin")
}

// DiscoveryBinary builds bin/tcpstatus-discovery like PluginBinary does and
// returns its absolute path.
func DiscoveryBinary() (string, error) {
	return buildOnce(DiscoveryName, "./discovery")
}

func buildOnce(name, pkg string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	r, ok := buildDone[name]
	if !ok {
		r.path, r.err = build(name, pkg)
		buildDone[name] = r
	}
	return r.path, r.err
}

// build compiles pkg into bin/<name>. It writes a temporary file next to the
// target and renames it over the target, so an agent running the previous
// binary (another test binary's) keeps running and never sees a half-written
// file.
func build(name, pkg string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	target := filepath.Join(bin, name)
	tmp := filepath.Join(bin, fmt.Sprintf(".%s.%d.tmp", name, os.Getpid()))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags(root), "-o", tmp, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out.String())
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return target, nil
}

// ldflags are the Makefile's LDFLAGS: stripped, version and commit stamped.
func ldflags(root string) string {
	version := "0.0.0"
	if b, err := os.ReadFile(filepath.Join(root, "VERSION")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		version = string(bytes.TrimSpace(b))
	}
	commit := "unknown"
	cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
	cmd.Dir = root
	if b, err := cmd.Output(); err == nil && len(bytes.TrimSpace(b)) > 0 {
		commit = string(bytes.TrimSpace(b))
	}
	return fmt.Sprintf("-s -w -X %[1]s/internal/version.Version=%[2]s -X %[1]s/internal/version.Commit=%[3]s",
		modulePath, version, commit)
}

// RepoRoot returns the directory holding this module's go.mod, searched
// upwards from the working directory (go test runs tests in their package
// directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && isModule(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repo root: no go.mod of module " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

func isModule(gomod []byte) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1] == modulePath
		}
	}
	return false
}
