// Command templatelint checks the Zabbix templates (templates/*.xml) for
// what the importer lets through: see package lint for the rules.
//
//	go run ./templates/lint templates/*.xml          # check
//	go run ./templates/lint -update templates/*.xml  # record new, renamed, removed objects in uuids.lock
//	go run ./templates/lint -official testdata/official-templates templates/*.xml
//	                                 # also: no name shared with Zabbix's own templates
//
// The lock defaults to uuids.lock next to the first file. Exit status 1
// when anything is reported.
package main

import (
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
	fs := flag.NewFlagSet("templatelint", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: templatelint [-lock uuids.lock] [-update] [-official dir] template.xml...")
		fs.PrintDefaults()
		fmt.Fprintln(stdout, "rules:", lint.Rules)
	}
	lockPath := fs.String("lock", "", "uuid lock file (default: uuids.lock next to the first template)")
	update := fs.Bool("update", false, "record new, renamed and removed objects in the lock (never a changed uuid)")
	officialDir := fs.String("official", "", "directory of official template names (zabbix-<version>.json, exported from real servers); no name of ours may be one of theirs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no template files given")
	}
	if *lockPath == "" {
		*lockPath = filepath.Join(filepath.Dir(fs.Arg(0)), "uuids.lock")
	}
	lock, err := lint.ReadLock(*lockPath)
	if err != nil {
		return err
	}
	var opts lint.Options
	if *officialDir != "" {
		if opts.Official, err = lint.ReadOfficial(*officialDir); err != nil {
			return err
		}
	}
	var files []lint.File
	for _, name := range fs.Args() {
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		files = append(files, lint.File{Name: name, Data: data})
	}
	res := lint.CheckWith(files, lock, opts)
	if *update {
		l, err := lint.Update(res)
		if err != nil {
			return err
		}
		if err := l.Write(*lockPath); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "templatelint: %s records %d objects\n", *lockPath, len(l))
		res = lint.CheckWith(files, l, opts)
	}
	for _, f := range res.Findings {
		fmt.Fprintln(stdout, f)
	}
	if n := len(res.Findings); n > 0 {
		return fmt.Errorf("%d problem(s) in %d file(s)", n, len(files))
	}
	fmt.Fprintf(stdout, "templatelint: %d file(s), %d objects, no problems\n", len(files), len(res.Objects))
	return nil
}
