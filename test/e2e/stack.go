package main

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// layout says where one Zabbix version's files are: 6.0 is installed from
// bookworm, 7.0 is unpacked (dpkg -x) from bookworm-backports under a root
// directory, because the two cannot be installed side by side.
type layout struct {
	version  string
	root     string // "" for the installed packages
	server   string
	agent2   string
	agentd   string
	schema   string // directory with schema.sql.gz, images.sql.gz, data.sql.gz
	frontend string
}

func newLayout(version, root string) layout {
	return layout{
		version:  version,
		root:     root,
		server:   filepath.Join("/", root, "usr/sbin/zabbix_server"),
		agent2:   filepath.Join("/", root, "usr/sbin/zabbix_agent2"),
		agentd:   filepath.Join("/", root, "usr/sbin/zabbix_agentd"),
		schema:   filepath.Join("/", root, "usr/share/zabbix-server-pgsql"),
		frontend: filepath.Join("/", root, "usr/share/zabbix"),
	}
}

// missing lists the files of the layout that are not there.
func (l layout) missing() []string {
	var out []string
	for _, p := range []string{l.server, l.agent2, l.agentd, filepath.Join(l.schema, "schema.sql.gz"), filepath.Join(l.frontend, "api_jsonrpc.php")} {
		if _, err := os.Stat(p); err != nil {
			out = append(out, p)
		}
	}
	return out
}

// freePort finds an unused loopback port in 20000-32767: Zabbix accepts
// ListenPort values up to 32767 only, below the kernel's ephemeral range.
func freePort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("no free port in 20000-32767")
}

const pgBin = "/usr/lib/postgresql/15/bin"

// postgres is a private PostgreSQL cluster: its own data directory, a Unix
// socket in the work directory and no TCP listener. Durability is off; the
// cluster lives for one run.
type postgres struct {
	dir, sock string
	port      int
	owner     account
}

func startPostgres(ctx context.Context, ps *procs, work string) (*postgres, error) {
	owner, err := lookupAccount("postgres")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pg := &postgres{dir: filepath.Join(work, "pg"), sock: filepath.Join(work, "pgsock"), port: port, owner: owner}
	for _, d := range []string{pg.dir, pg.sock} {
		if err := mkdirOwned(d, &owner); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(pg.dir, 0o700); err != nil {
		return nil, err
	}
	if _, err := run(ctx, &owner, nil, pgBin+"/initdb", "-D", pg.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		return nil, err
	}
	logPath := filepath.Join(work, "postgres.log")
	if err := writeFile(logPath, "", &owner); err != nil {
		return nil, err
	}
	if _, err := ps.start("postgres", &owner, logPath, nil, syscall.SIGINT,
		pgBin+"/postgres", "-D", pg.dir, "-k", pg.sock, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=128MB"); err != nil {
		return nil, err
	}
	err = waitFor(ctx, "PostgreSQL accepts connections", 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, err := pg.psql(ctx, "postgres", "postgres", "SELECT 1")
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, fileTail(logPath, 1500))
	}
	if _, err := pg.psql(ctx, "postgres", "postgres", "CREATE ROLE zabbix LOGIN"); err != nil {
		return nil, err
	}
	return pg, nil
}

func (pg *postgres) psql(ctx context.Context, user, db, sql string) (string, error) {
	return run(ctx, nil, nil, "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
		"-h", pg.sock, "-p", strconv.Itoa(pg.port), "-U", user, "-d", db, "-c", sql)
}

// createDB creates a UTF-8 database owned by zabbix and loads the schema,
// images and data of one Zabbix version, in that order, in one transaction.
func (pg *postgres) createDB(ctx context.Context, name, schemaDir string) error {
	if _, err := pg.psql(ctx, "postgres", "postgres", "CREATE DATABASE "+name+" OWNER zabbix ENCODING 'UTF8' TEMPLATE template0"); err != nil {
		return err
	}
	var readers []io.Reader
	for _, f := range []string{"schema.sql.gz", "images.sql.gz", "data.sql.gz"} {
		fh, err := os.Open(filepath.Join(schemaDir, f))
		if err != nil {
			return err
		}
		defer fh.Close()
		gz, err := gzip.NewReader(fh)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		readers = append(readers, gz)
	}
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1",
		"-h", pg.sock, "-p", strconv.Itoa(pg.port), "-U", "zabbix", "-d", name)
	cmd.Stdin = io.MultiReader(readers...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("load schema into %s: %w: %s", name, err, tail(string(out), 800))
	}
	// The shipped "Zabbix server" host (10084) polls an agent on
	// 127.0.0.1:10050, which is not ours: disable it before the server starts.
	if out, err := pg.psql(ctx, "zabbix", name, "UPDATE hosts SET status=1 WHERE hostid=10084 RETURNING host"); err != nil || strings.TrimSpace(out) != "Zabbix server" {
		return fmt.Errorf("disable host 10084 in %s: %v %q", name, err, out)
	}
	return pg.analyze(ctx, name)
}

// analyze refreshes the planner's statistics. Without them, right after a
// bulk load, the frontend's trigger-dependency query for linking a
// template to a host runs for minutes instead of milliseconds.
func (pg *postgres) analyze(ctx context.Context, db string) error {
	_, err := pg.psql(ctx, "zabbix", db, "ANALYZE")
	return err
}

// zabbix is one running Zabbix version: server and frontend (PHP's built-in
// web server) over its own database, all under work.
type zabbix struct {
	l          layout
	work       string
	db         string
	pg         *postgres
	zbx        account
	serverPort int
	webPort    int
	serverConf string
	serverLog  string
	api        *api
}

// startZabbix starts the server and the frontend of one version over a
// database already loaded, and logs in to the API.
func startZabbix(ctx context.Context, ps *procs, l layout, work, db string, pg *postgres) (*zabbix, error) {
	zbx, err := lookupAccount("zabbix")
	if err != nil {
		return nil, err
	}
	z := &zabbix{l: l, work: work, db: db, pg: pg, zbx: zbx}
	if err := mkdirOwned(filepath.Join(work, "run"), &zbx); err != nil {
		return nil, err
	}
	if z.serverPort, err = freePort(); err != nil {
		return nil, err
	}
	if z.webPort, err = freePort(); err != nil {
		return nil, err
	}
	z.serverConf = filepath.Join(work, "zabbix_server.conf")
	z.serverLog = filepath.Join(work, "zabbix_server.log")
	if err := writeFile(z.serverLog, "", &zbx); err != nil {
		return nil, err
	}
	if err := writeFile(z.serverConf, z.serverConfig(), nil); err != nil {
		return nil, err
	}
	// The server drops root to the zabbix user by itself (User=zabbix).
	server, err := ps.start("zabbix_server "+l.version, nil, filepath.Join(work, "server.stdout"), nil, syscall.SIGTERM,
		l.server, "-f", "-c", z.serverConf)
	if err != nil {
		return nil, err
	}
	if err := z.startFrontend(ps); err != nil {
		return nil, err
	}
	z.api = newAPI(fmt.Sprintf("http://127.0.0.1:%d/api_jsonrpc.php", z.webPort))
	err = waitFor(ctx, "frontend answers", 30*time.Second, 250*time.Millisecond, func() (bool, error) {
		var v string
		return z.api.call(ctx, "apiinfo.version", map[string]any{}, &v) == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, fileTail(filepath.Join(work, "php.log"), 1500))
	}
	if err := z.api.login(ctx); err != nil {
		return nil, err
	}
	err = waitFor(ctx, "server started", 60*time.Second, 250*time.Millisecond, func() (bool, error) {
		if done, err := server.exited(); done {
			return false, fmt.Errorf("server exited (%v): %s %s", err, fileTail(filepath.Join(work, "server.stdout"), 500), fileTail(z.serverLog, 1000))
		}
		b, _ := os.ReadFile(z.serverLog)
		if strings.Contains(string(b), "server #0 started [main process]") {
			return true, nil
		}
		if strings.Contains(string(b), "cannot ") && strings.Contains(string(b), "database") {
			return false, fmt.Errorf("server log: %s", tail(string(b), 800))
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, fileTail(z.serverLog, 1500))
	}
	return z, nil
}

// serverConfig is the server's private configuration: own ports, sockets,
// logs and database; a 5 s configuration sync so new hosts and discovered
// items reach the pollers fast; few processes for a 2-core machine.
func (z *zabbix) serverConfig() string {
	lines := []string{
		"ListenIP=127.0.0.1",
		"ListenPort=" + strconv.Itoa(z.serverPort),
		"LogType=file",
		"LogFile=" + z.serverLog,
		"LogFileSize=0",
		"DebugLevel=3",
		"PidFile=" + filepath.Join(z.work, "run", "zabbix_server.pid"),
		"SocketDir=" + filepath.Join(z.work, "run"),
		"DBHost=" + z.pg.sock,
		"DBPort=" + strconv.Itoa(z.pg.port),
		"DBName=" + z.db,
		"DBUser=zabbix",
		"AllowUnsupportedDBVersions=1",
		"User=zabbix",
		"CacheUpdateFrequency=5",
		"HousekeepingFrequency=0",
		"Timeout=10",
		"StartPollers=4",
		"StartPollersUnreachable=1",
		"StartTrappers=2",
		"StartPingers=0",
		"StartDiscoverers=0",
		"StartHTTPPollers=0",
		"StartAlerters=1",
		"StartDBSyncers=2",
		"StartLLDProcessors=2",
		"StartPreprocessors=2",
		"StartHistoryPollers=2",
		"StartODBCPollers=0",
		"StartReportWriters=0",
		"FpingLocation=/usr/bin/fping",
	}
	if strings.HasPrefix(z.l.version, "7.") {
		lines = append(lines, "StartAgentPollers=1", "StartHTTPAgentPollers=0", "StartSNMPPollers=0", "StartBrowserPollers=0")
	}
	return strings.Join(lines, "\n") + "\n"
}

// startFrontend copies the frontend (the Debian build reads its
// configuration from a fixed /etc path, which a test must not write), points
// the copy at a private configuration and serves it with PHP's built-in web
// server.
func (z *zabbix) startFrontend(ps *procs) error {
	ui := filepath.Join(z.work, "ui")
	if out, err := exec.Command("cp", "-a", z.l.frontend, ui).CombinedOutput(); err != nil {
		return fmt.Errorf("copy frontend: %w: %s", err, out)
	}
	if err := linkFonts(ui, z.l.frontend); err != nil {
		return err
	}
	confPHP := filepath.Join(z.work, "zabbix.conf.php")
	cls := filepath.Join(ui, "include/classes/core/CConfigFile.php")
	src, err := os.ReadFile(cls)
	if err != nil {
		return err
	}
	re := regexp.MustCompile(`const CONFIG_FILE_PATH = '[^']*';`)
	if !re.Match(src) {
		return fmt.Errorf("%s: no CONFIG_FILE_PATH constant to redirect", cls)
	}
	src = re.ReplaceAll(src, []byte("const CONFIG_FILE_PATH = '"+confPHP+"';"))
	if err := os.WriteFile(cls, src, 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`<?php
$DB['TYPE'] = 'POSTGRESQL';
$DB['SERVER'] = '%s';
$DB['PORT'] = '%d';
$DB['DATABASE'] = '%s';
$DB['USER'] = 'zabbix';
$DB['PASSWORD'] = '';
$DB['SCHEMA'] = '';
$DB['ENCRYPTION'] = false;
$DB['DOUBLE_IEEE754'] = true;
$ZBX_SERVER = '127.0.0.1';
$ZBX_SERVER_PORT = '%d';
$ZBX_SERVER_NAME = 'tcpstatus e2e %s';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
`, z.pg.sock, z.pg.port, z.db, z.serverPort, z.l.version)
	if err := writeFile(confPHP, conf, nil); err != nil {
		return err
	}
	_, err = ps.start("php "+z.l.version, nil, filepath.Join(z.work, "php.log"), []string{"PHP_CLI_SERVER_WORKERS=4"}, syscall.SIGTERM,
		"php", "-S", fmt.Sprintf("127.0.0.1:%d", z.webPort), "-t", ui,
		"-d", "memory_limit=1G", "-d", "max_execution_time=300", "-d", "post_max_size=64M",
		"-d", "upload_max_filesize=64M", "-d", "display_errors=stderr", "-d", "log_errors=On")
	return err
}

// linkFonts points the copy's font links (Debian's assets/fonts/DejaVuSans.ttf
// is a relative link into /usr/share/fonts, from fonts-dejavu-core) at the
// installed fonts, so that graphs get their text: relative to the original
// frontend, or, for a frontend unpacked elsewhere (7.0), to the installed
// one's place.
func linkFonts(ui, orig string) error {
	dir := filepath.Join(ui, "assets/fonts")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		link := filepath.Join(dir, e.Name())
		target, err := os.Readlink(link)
		if err != nil || filepath.IsAbs(target) {
			continue
		}
		var found string
		for _, base := range []string{filepath.Join(orig, "assets/fonts"), "/usr/share/zabbix/assets/fonts"} {
			if p := filepath.Join(base, target); fileExists(p) {
				found = p
				break
			}
		}
		if found == "" {
			return fmt.Errorf("frontend font %s: no %s (apt-get install fonts-dejavu-core)", e.Name(), target)
		}
		if err := os.Remove(link); err != nil {
			return err
		}
		if err := os.Symlink(found, link); err != nil {
			return err
		}
	}
	return nil
}

// reloadConfig makes the server read the configuration now instead of at
// the next sync.
func (z *zabbix) reloadConfig(ctx context.Context) error {
	_, err := run(ctx, nil, nil, z.l.server, "-c", z.serverConf, "-R", "config_cache_reload")
	return err
}
