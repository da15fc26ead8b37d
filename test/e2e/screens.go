package main

import (
	"context"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Screenshots of the template dashboards, from the run's real frontend
// (-screenshots DIR, on the first version only): headless Chromium from
// Debian's packages loads each page of each dashboard of the host's
// templates at 1600 px wide, after the trigger scenario has filled them
// with data. Chromium's command line shows one URL and cannot sign in, so
// the guest user gets read access to the host's group, the URL signs in as
// guest and goes on to the host's dashboard, and each page is shown by
// moving it first in the template dashboard (a host dashboard opens on its
// first page) and back afterwards.

// screenshotWidth is the wall-screen width the dashboards are laid out for.
const screenshotWidth = 1600

// takeScreenshots writes DIR/<template file base>-<dashboard>-<page>.png
// for every page of every dashboard of the host's templates.
func takeScreenshots(ctx context.Context, z *zabbix, tg *target, dir string) error {
	chromium, err := lookPath("chromium")
	if err != nil {
		return fmt.Errorf("screenshots: no chromium (apt-get install chromium): %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	guest, err := guestReads(ctx, z, tg)
	if err != nil {
		return err
	}
	profile := filepath.Join(z.work, "chromium-profile")
	specs := []*tmplSpec{tg.spec}
	if tg.disk != nil {
		specs = append(specs, tg.disk)
	}
	n := 0
	var shots []string
	for _, sp := range specs {
		tid, err := templateID(ctx, z, sp.name)
		if err != nil {
			return err
		}
		var dashes []struct {
			DashboardID string `json:"dashboardid"`
			Name        string `json:"name"`
			Pages       []struct {
				ID   string `json:"dashboard_pageid"`
				Name string `json:"name"`
			} `json:"pages"`
		}
		if err := z.api.call(ctx, "templatedashboard.get", map[string]any{"templateids": tid, "output": "extend", "selectPages": "extend"}, &dashes); err != nil {
			return err
		}
		for _, d := range dashes {
			order := func(first int) []any {
				out := []any{map[string]string{"dashboard_pageid": d.Pages[first].ID}}
				for i, p := range d.Pages {
					if i != first {
						out = append(out, map[string]string{"dashboard_pageid": p.ID})
					}
				}
				return out
			}
			for i, p := range d.Pages {
				if err := z.api.call(ctx, "templatedashboard.update", map[string]any{"dashboardid": d.DashboardID, "pages": order(i)}, nil); err != nil {
					return fmt.Errorf("show page %q first: %w", p.Name, err)
				}
				name := fileSafe(strings.TrimSuffix(filepath.Base(sp.file), ".xml") + "-" + d.Name + "-" + p.Name)
				out := filepath.Join(dir, name+".png")
				if err := shoot(ctx, chromium, profile, z, tg, guest, d.DashboardID, out); err != nil {
					return err
				}
				logf("Zabbix %s: screenshot of %q page %q on %s: %s", z.l.version, d.Name, p.Name, tg.hostname, out)
				shots = append(shots, out)
				n++
			}
			// Back to the template's own order.
			if err := z.api.call(ctx, "templatedashboard.update", map[string]any{"dashboardid": d.DashboardID, "pages": order(0)}, nil); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("screenshots: no dashboard page on %s", tg.hostname)
	}
	return distinctFiles(shots)
}

// distinctFiles fails when two screenshots are the same picture (a
// sign-in or error page instead of the dashboard pages).
func distinctFiles(paths []string) error {
	seen := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if q, ok := seen[string(b)]; ok {
			return fmt.Errorf("screenshots: %s and %s are the same picture", q, p)
		}
		seen[string(b)] = p
	}
	return nil
}

// guestReads lets the guest user read the host's group, so that a guest
// session shows the host's dashboards.
func guestReads(ctx context.Context, z *zabbix, tg *target) (string, error) {
	var groups []struct {
		ID string `json:"usrgrpid"`
	}
	if err := z.api.call(ctx, "usergroup.get", map[string]any{"filter": map[string]any{"name": "Guests"}, "output": []string{"usrgrpid"}}, &groups); err != nil {
		return "", err
	}
	var hosts []struct {
		Groups []struct {
			ID string `json:"groupid"`
		} `json:"groups"`
	}
	if err := z.api.call(ctx, "host.get", map[string]any{"hostids": tg.hostid, "output": []string{"hostid"}, "selectGroups": []string{"groupid"}}, &hosts); err != nil {
		return "", err
	}
	if len(groups) != 1 || len(hosts) != 1 || len(hosts[0].Groups) == 0 {
		return "", fmt.Errorf("screenshots: user group Guests or the host's group not found")
	}
	rights := []any{map[string]any{"id": hosts[0].Groups[0].ID, "permission": 2}}
	// The widgets name the template's graphs and items: reading them
	// needs the template's group too (a host group on 6.0).
	var tgroups []struct {
		ID string `json:"groupid"`
	}
	if err := z.api.call(ctx, "hostgroup.get", map[string]any{"filter": map[string]any{"name": "Templates/Operating systems"}, "output": []string{"groupid"}}, &tgroups); err != nil {
		return "", err
	}
	for _, g := range tgroups {
		rights = append(rights, map[string]any{"id": g.ID, "permission": 2})
	}
	param := "rights"
	if z.api.v7() {
		param = "hostgroup_rights"
	}
	if err := z.api.call(ctx, "usergroup.update", map[string]any{"usrgrpid": groups[0].ID, "users_status": 0, "gui_access": 0, param: rights}, nil); err != nil {
		return "", err
	}
	// A new database puts guest in the "Disabled" group too: Guests only.
	var users []struct {
		ID string `json:"userid"`
	}
	if err := z.api.call(ctx, "user.get", map[string]any{"filter": map[string]any{"username": "guest"}, "output": []string{"userid"}}, &users); err != nil {
		return "", err
	}
	if len(users) != 1 {
		return "", fmt.Errorf("screenshots: user guest: %d found", len(users))
	}
	// en_GB: the frontend warns on every widget when the machine has no
	// locale for the language, except for en_GB. The API refuses to set
	// guest's own language; guest takes the default one.
	if err := z.api.call(ctx, "settings.update", map[string]any{"default_lang": "en_GB"}, nil); err != nil {
		return "", err
	}
	err := z.api.call(ctx, "user.update", map[string]any{"userid": users[0].ID, "usrgrps": []any{map[string]string{"usrgrpid": groups[0].ID}}}, nil)
	return users[0].ID, err
}

// guestSees signs in as guest the way Chromium will and checks that the
// host's dashboard comes back, not the sign-in page.
func guestSees(ctx context.Context, u, want string) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	c := &http.Client{Jar: jar, Timeout: 60 * time.Second}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	page := string(b)
	if strings.Contains(page, "No permissions") || !strings.Contains(page, want) {
		return fmt.Errorf("screenshots: %s as guest does not show %q (%s): %.300s", u, want, resp.Status, page)
	}
	return nil
}

// shoot loads the host's dashboard as guest, in kiosk mode as on a wall
// screen (no menu, no time selector), over the last 5 minutes (the run's
// data is a few minutes old), and saves the window as a PNG, checked to be
// one.
func shoot(ctx context.Context, chromium, profile string, z *zabbix, tg *target, guest, dashboardID, out string) error {
	// A guest sign-in ignores the request parameter and goes to the
	// user's own start page.
	page := fmt.Sprintf("zabbix.php?action=host.dashboard.view&hostid=%s&dashboardid=%s&from=now-5m&to=now", tg.hostid, dashboardID)
	if err := z.api.call(ctx, "user.update", map[string]any{"userid": guest, "url": page}, nil); err != nil {
		return err
	}
	u := fmt.Sprintf("http://127.0.0.1:%d/index.php?enter=guest", z.webPort)
	// Checked on the normal page, which names the host; kiosk mode then
	// only hides the frame around the same dashboard.
	if err := guestSees(ctx, u, tg.hostname); err != nil {
		return err
	}
	if err := z.api.call(ctx, "user.update", map[string]any{"userid": guest, "url": page + "&kiosk=1"}, nil); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	os.Remove(out)
	cmd := exec.CommandContext(cctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+profile, fmt.Sprintf("--window-size=%d,1700", screenshotWidth),
		"--virtual-time-budget=20000", "--screenshot="+out, u)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("chromium %s: %w: %s", u, err, tail(string(b), 800))
	}
	f, err := os.Open(out)
	if err != nil {
		return fmt.Errorf("chromium wrote no %s: %s", out, tail(string(b), 800))
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != screenshotWidth {
		return fmt.Errorf("%s: not a %d px wide PNG: %v", out, screenshotWidth, err)
	}
	return nil
}

var unsafeRe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func fileSafe(s string) string {
	return strings.Trim(unsafeRe.ReplaceAllString(strings.ToLower(s), "-"), "-")
}
