package main

import (
	"strings"
)

// node is one XML element: text or children, never both. Elements are
// written in the order given, which is the order configuration.export uses,
// so an imported file compares clean against the database.
type node struct {
	name string
	text string
	kids []*node
}

// el builds an element from children; nil children are dropped, and an
// element left without children is dropped by its parent.
func el(name string, kids ...*node) *node {
	n := &node{name: name}
	for _, k := range kids {
		if k != nil {
			n.kids = append(n.kids, k)
		}
	}
	if len(n.kids) == 0 {
		return nil
	}
	return n
}

// tx builds a text element, or nil (omitted) for an empty value.
func tx(name, text string) *node {
	if text == "" {
		return nil
	}
	return &node{name: name, text: text}
}

// empty builds an element written as <name/> (e.g. an empty parameter).
func empty(name string) *node { return &node{name: name} }

// list wraps items under a container element, e.g. <tags><tag>…</tag></tags>.
func list(name string, items []*node) *node { return el(name, items...) }

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func (n *node) write(b *strings.Builder, depth int) {
	ind := strings.Repeat("    ", depth)
	b.WriteString(ind + "<" + n.name)
	switch {
	case len(n.kids) > 0:
		b.WriteString(">\n")
		for _, k := range n.kids {
			k.write(b, depth+1)
		}
		b.WriteString(ind + "</" + n.name + ">\n")
	case n.text == "":
		b.WriteString("/>\n")
	default:
		b.WriteString(">" + escaper.Replace(n.text) + "</" + n.name + ">\n")
	}
}

// document renders a whole export file.
func document(root *node) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	root.write(&b, 0)
	return b.String()
}
