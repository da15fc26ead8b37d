package agentproto

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// ConfigNode is one entry of the configuration tree the agent builds from the
// lines Plugins.<Name>.<a>.<b>=<value>: either a node (Name set, children in
// Nodes) or a value (Value set: base64 of the raw text, no Name). The root is
// the plugin's own node. Line is where the entry was defined.
type ConfigNode struct {
	Name  string       `json:"Name,omitempty"`
	Nodes []ConfigNode `json:"Nodes,omitempty"`
	Value *string      `json:"Value,omitempty"`
	Line  int          `json:"Line"`
}

// SystemNode is the subtree holding the agent's own settings for the plugin
// (Path, and in 7.0 Capacity); agents up to 7.0.9 still send it.
const SystemNode = "System"

// Options flattens the tree under the root into option name → value. A
// first-level option Plugins.<Name>.Foo=bar gives "Foo": "bar"; deeper ones
// are joined with dots (Plugins.<Name>.Sessions.S1.Uri gives
// "Sessions.S1.Uri"), so a consumer that knows only first-level options can
// reject them by name. The System subtree is left out. A nil tree has no
// options. Errors: a value that is not base64, an option set more than
// once, a node without values, an entry that is neither a node nor a value
// (or both), a value right under the root, an option more than MaxDepth
// names deep.
func (n *ConfigNode) Options() (map[string]string, error) {
	opts := map[string]string{}
	if n == nil {
		return opts, nil
	}
	if n.Value != nil {
		return nil, fmt.Errorf("config line %d: plugin root is a value, not a node", n.Line)
	}
	lines := map[string]int{}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.Value == nil && c.Name == SystemNode {
			continue
		}
		if err := c.flatten("", 1, opts, lines); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// MaxDepth bounds the names of an option under the plugin's
// (Plugins.<Name>.a.b.c is 3 deep; sessions need 3). A deeper tree is
// refused before its path is built, so a tree nested thousands deep costs
// no more than its decoding.
const MaxDepth = 16

// flatten adds the values under c to opts; prefix is the dotted path of c's
// parent ("" at the first level), depth the number of names in c's path.
func (c *ConfigNode) flatten(prefix string, depth int, opts map[string]string, lines map[string]int) error {
	switch {
	case c.Value != nil && (c.Name != "" || len(c.Nodes) > 0):
		return fmt.Errorf("config line %d: entry is both a value and a node", c.Line)
	case c.Value != nil && prefix == "":
		return fmt.Errorf("config line %d: value without an option name", c.Line)
	case c.Value != nil:
		v, err := base64.StdEncoding.DecodeString(*c.Value)
		if err != nil {
			return fmt.Errorf("config line %d: option %s: value is not base64: %w", c.Line, prefix, err)
		}
		if first, dup := lines[prefix]; dup {
			return fmt.Errorf("config line %d: option %s is already set on line %d", c.Line, prefix, first)
		}
		lines[prefix] = c.Line
		opts[prefix] = string(v)
		return nil
	case c.Name == "":
		return fmt.Errorf("config line %d: entry has neither a name nor a value", c.Line)
	case depth > MaxDepth:
		return fmt.Errorf("config line %d: option %s... is nested more than %d names deep", c.Line, prefix[:min(len(prefix), 64)], MaxDepth)
	}
	path := c.Name
	if prefix != "" {
		path = prefix + "." + c.Name
	}
	if len(c.Nodes) == 0 {
		return fmt.Errorf("config line %d: option %s has no value", c.Line, path)
	}
	for i := range c.Nodes {
		if err := c.Nodes[i].flatten(path, depth+1, opts, lines); err != nil {
			return err
		}
	}
	return nil
}

// optionNames returns the names of opts, sorted, for messages.
func optionNames(opts map[string]string) []string {
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Summary describes a tree's options for a debug log: names and lines only,
// never values (they may hold passwords).
func (n *ConfigNode) Summary() string {
	opts, err := n.Options()
	if err != nil {
		return "invalid: " + err.Error()
	}
	return "options: [" + strings.Join(optionNames(opts), " ") + "]"
}
