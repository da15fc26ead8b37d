// Command gen writes the Zabbix templates and their READMEs from the
// description in this package, taking each object's uuid from
// templates/uuids.lock and recording a new v4 uuid for each new object.
//
// Both templates carry the same items, triggers and graphs (the classic
// agent's UserParameters answer the same keys as the agent 2 plugin), so
// they are written from one description instead of being kept in step by
// hand.
//
//	go run ./templates/gen            # rewrite templates/*.xml, *.README.md, uuids.lock
//	go run ./templates/gen -check     # fail if any of them is out of date
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"zabbix-agent2-plugin-tcpstatus/templates/lint/lint"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stdout)
	dir := fs.String("dir", "templates", "templates directory")
	check := fs.Bool("check", false, "only check that the files are up to date")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	lockPath := filepath.Join(*dir, "uuids.lock")
	lock, err := lint.ReadLock(lockPath)
	if err != nil {
		return err
	}
	files, newLock, err := generate(lock, newUUID)
	if err != nil {
		return err
	}
	files["uuids.lock"] = newLock.Format()
	var stale []string
	for name, content := range files {
		path := filepath.Join(*dir, name)
		old, _ := os.ReadFile(path)
		if string(old) == content {
			continue
		}
		stale = append(stale, path)
		if !*check {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "wrote", path)
		}
	}
	if *check && len(stale) > 0 {
		return fmt.Errorf("out of date, run go run ./templates/gen: %v", stale)
	}
	return nil
}

// generate renders every template and README. It returns the files by
// name and the lock holding exactly the objects written.
func generate(lock lint.Lock, mint func() string) (map[string]string, lint.Lock, error) {
	u := &ids{lock: lint.Lock{}, used: map[string]bool{}, mint: mint}
	for p, id := range lock {
		u.lock[p] = id
	}
	files := map[string]string{}
	for _, v := range variants {
		t := build(v)
		files[v.file+".xml"] = render(t, u)
		files[v.file+".README.md"] = readme(v, t)
		d := buildDisk(v)
		files[diskFile(v)+".xml"] = render(d, u)
		files[diskFile(v)+".README.md"] = readme(diskVariant(v), d)
	}
	out := lint.Lock{}
	for p := range u.used {
		out[p] = u.lock[p]
	}
	return files, out, nil
}

// newUUID returns a random version 4 uuid as Zabbix writes it: 32
// lower-case hex digits.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}
