package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"zabbix-agent2-plugin-tcpstatus/internal/agentproto"
	"zabbix-agent2-plugin-tcpstatus/internal/metrics"
	"zabbix-agent2-plugin-tcpstatus/internal/zbx"
)

// handler answers the agent with the metrics exporter.
type handler struct {
	log *agentproto.Logger

	mu  sync.Mutex
	exp *metrics.Exporter // set by Configure, or with defaults on first use
}

var _ agentproto.Handler = (*handler)(nil)

// Metrics lists the keys of an exporter with the default configuration
// (building it opens nothing).
func (h *handler) Metrics() ([]agentproto.Metric, error) {
	e, err := metrics.New(metrics.DefaultConfig(), metrics.NopLogger{})
	if err != nil {
		return nil, fmt.Errorf("cannot build the key table: %w", err)
	}
	var out []agentproto.Metric
	for _, m := range e.Metrics() {
		out = append(out, agentproto.Metric{Key: m.Key, Description: m.Description})
	}
	return out, nil
}

// Validate checks the Plugins.TCPStatus.* options; the agent refuses to
// start with the returned text.
func (h *handler) Validate(opts map[string]string) error {
	if _, err := metrics.ParseConfig(opts, 0); err != nil {
		return errors.New(zbx.Sentence(err.Error()))
	}
	return nil
}

// Configure builds the exporter from the options and the agent's Timeout. An
// invalid configuration (Validate saw the same one, so this is rare) falls
// back to the defaults with a warning. It returns the configured request
// time limit.
func (h *handler) Configure(g agentproto.GlobalOptions, opts map[string]string) time.Duration {
	global := agentproto.Seconds(g.Timeout)
	cfg, err := metrics.ParseConfig(opts, global)
	if err != nil {
		h.log.Warningf("invalid configuration, using the defaults: %v", err)
		cfg, _ = metrics.ParseConfig(nil, global)
	}
	e, err := metrics.New(cfg, h.log)
	if err != nil {
		h.log.Warningf("cannot apply the configuration, using the defaults: %v", err)
		e, cfg = nil, metrics.DefaultConfig()
	}
	h.mu.Lock()
	h.exp = e
	h.mu.Unlock()
	return cfg.Timeout
}

// exporter returns the configured exporter, or one with the default
// configuration if Configure never came or failed.
func (h *handler) exporter() (*metrics.Exporter, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.exp == nil {
		h.log.Warningf("no usable configuration received from the agent, using the defaults")
		e, err := metrics.New(metrics.DefaultConfig(), h.log)
		if err != nil {
			return nil, err
		}
		h.exp = e
	}
	return h.exp, nil
}

// Export answers one item. A panic is Serve's to answer.
func (h *handler) Export(ctx context.Context, key string, params []string) (string, error) {
	e, err := h.exporter()
	if err != nil {
		return "", errors.New(zbx.Sentence("cannot initialise the plugin: " + err.Error()))
	}
	return e.Export(ctx, key, params)
}
