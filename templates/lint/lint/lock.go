package lint

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Lock is the committed record of every template object's uuid, by path
// (see Object.Path). A uuid is an object's identity on import: when it
// changes, a server that already has the template deletes the object, with
// its history, and creates a new one.
type Lock map[string]string

const lockHeader = `# uuids.lock: the uuid of every object in templates/*.xml, by object path.
# Checked by templates/lint: an object's uuid must never change. New,
# renamed and removed objects are recorded with -update (or by
# go run ./templates/gen, which writes this file).
`

// ReadLock reads a lock file; a missing file is an empty lock.
func ReadLock(path string) (Lock, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return Lock{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseLock(f)
}

// ParseLock parses "uuid path" lines; # starts a comment line.
func ParseLock(r io.Reader) (Lock, error) {
	l := Lock{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, path, ok := strings.Cut(line, " ")
		path = strings.TrimSpace(path)
		if !ok || path == "" {
			return nil, fmt.Errorf("uuids.lock line %d: want \"<uuid> <path>\", got %q", n, line)
		}
		if _, dup := l[path]; dup {
			return nil, fmt.Errorf("uuids.lock line %d: path %q recorded twice", n, path)
		}
		l[path] = id
	}
	return l, sc.Err()
}

// Format renders the lock sorted by path.
func (l Lock) Format() string {
	paths := make([]string, 0, len(l))
	for p := range l {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	b.WriteString(lockHeader)
	for _, p := range paths {
		b.WriteString(l[p] + " " + p + "\n")
	}
	return b.String()
}

// Write writes the lock file.
func (l Lock) Write(path string) error {
	return os.WriteFile(path, []byte(l.Format()), 0o644)
}
