// Package version holds the build's version, set by the Makefile with
// -ldflags -X.
package version

// Set at build time.
var (
	Version = "0.0.0-dev"
	Commit  = "unknown"
)

// String is "<version> (<commit>)".
func String() string { return Version + " (" + Commit + ")" }
