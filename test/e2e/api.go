package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// api is a Zabbix JSON-RPC client. 6.0 takes the session in the "auth"
// member of every request; 6.4 and later prefer an Authorization header,
// which 7.0 also accepts, so both versions are served by sending both once
// logged in (6.0 ignores the header).
type api struct {
	url     string
	token   string
	version string
	client  *http.Client
	id      atomic.Int64 // cycles call it from several goroutines
}

// apiError is an error answer of the API: code, message and data, e.g.
// -32602 "Invalid params." "Item with key ... already exists".
type apiError struct {
	Method  string
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    string `json:"data"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: %d %s %s", e.Method, e.Code, e.Message, e.Data)
}

func newAPI(url string) *api {
	return &api{url: url, client: &http.Client{Timeout: 300 * time.Second}}
}

// call sends one request and decodes its result into out (if not nil).
func (a *api) call(ctx context.Context, method string, params any, out any) error {
	req := map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": a.id.Add(1)}
	if a.token != "" && !a.v7() {
		req["auth"] = a.token
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", method, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json-rpc")
	if a.token != "" && a.v7() {
		hr.Header.Set("Authorization", "Bearer "+a.token)
	}
	t := time.Now()
	resp, err := a.client.Do(hr)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if d := time.Since(t); d > 10*time.Second {
		logf("slow API call: %s took %.0fs", method, d.Seconds())
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", method, err)
	}
	var ans struct {
		Result json.RawMessage `json:"result"`
		Error  *apiError       `json:"error"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("%s: HTTP %d, not JSON-RPC: %.300q", method, resp.StatusCode, raw)
	}
	if ans.Error != nil {
		ans.Error.Method = method
		return ans.Error
	}
	if out != nil {
		if err := json.Unmarshal(ans.Result, out); err != nil {
			return fmt.Errorf("%s: decode result: %w", method, err)
		}
	}
	return nil
}

func (a *api) v7() bool { return strings.HasPrefix(a.version, "7.") }

// login reads the API version and logs in as the default administrator of
// a new database.
func (a *api) login(ctx context.Context) error {
	if err := a.call(ctx, "apiinfo.version", map[string]any{}, &a.version); err != nil {
		return err
	}
	return a.call(ctx, "user.login", map[string]any{"username": "Admin", "password": "zabbix"}, &a.token)
}
