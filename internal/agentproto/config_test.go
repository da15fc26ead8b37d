package agentproto

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
)

func TestConfigOptions(t *testing.T) {
	cases := []struct {
		name string
		tree string
		want map[string]string
		err  string
	}{
		{"+protocol notes example", protoDocTree, protoDocOptions, ""},
		{"+null tree", `null`, map[string]string{}, ""},
		{"+System only (agent 6.0.14 with no options)", `{"Name":"TCPStatus","Line":1,"Nodes":[{"Name":"System","Line":1,"Nodes":[{"Name":"Path","Line":1,"Nodes":[{"Value":"L2Jpbi90Y3A=","Line":1}]}]}]}`, map[string]string{}, ""},
		{"+no System (agent 7.0.22)", `{"Name":"TCPStatus","Line":4,"Nodes":[{"Name":"Timeout","Line":4,"Nodes":[{"Value":"NQ==","Line":4}]}]}`, map[string]string{"Timeout": "5"}, ""},
		{"+empty value", `{"Name":"X","Nodes":[{"Name":"ProcRoot","Nodes":[{"Value":"","Line":2}]}]}`, map[string]string{"ProcRoot": ""}, ""},
		{"+value with spaces and = kept raw", `{"Name":"X","Nodes":[{"Name":"A","Nodes":[{"Value":"IGE9YiA=","Line":2}]}]}`, map[string]string{"A": " a=b "}, ""},
		{"+nested System below the first level is an option", `{"Name":"X","Nodes":[{"Name":"Sessions","Nodes":[{"Name":"System","Nodes":[{"Value":"eA==","Line":2}]}]}]}`, map[string]string{"Sessions.System": "x"}, ""},
		{"+value and subnode side by side", `{"Name":"X","Nodes":[{"Name":"A","Nodes":[{"Value":"MQ==","Line":2},{"Name":"B","Nodes":[{"Value":"Mg==","Line":3}]}]}]}`, map[string]string{"A": "1", "A.B": "2"}, ""},
		{"-repeated line", `{"Name":"X","Nodes":[{"Name":"Timeout","Line":2,"Nodes":[{"Value":"NQ==","Line":2},{"Value":"Ng==","Line":7}]}]}`, nil, "config line 7: option Timeout is already set on line 2"},
		{"-not base64", `{"Name":"X","Nodes":[{"Name":"Foo","Line":2,"Nodes":[{"Value":"bar","Line":2}]}]}`, nil, "config line 2: option Foo: value is not base64"},
		{"-value under the root", `{"Name":"X","Nodes":[{"Value":"YmFy","Line":3}]}`, nil, "config line 3: value without an option name"},
		{"-root is a value", `{"Value":"YmFy","Line":1}`, nil, "config line 1: plugin root is a value"},
		{"-neither", `{"Name":"X","Nodes":[{"Name":"A","Nodes":[{"Line":5}]}]}`, nil, "config line 5: entry has neither a name nor a value"},
		{"-both", `{"Name":"X","Nodes":[{"Name":"A","Nodes":[{"Name":"B","Value":"YQ==","Line":6}]}]}`, nil, "config line 6: entry is both a value and a node"},
		{"-node without values", `{"Name":"X","Nodes":[{"Name":"A","Line":8}]}`, nil, "config line 8: option A has no value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n *ConfigNode
			if err := json.Unmarshal([]byte(c.tree), &n); err != nil {
				t.Fatal(err)
			}
			got, err := n.Options()
			if c.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !maps.Equal(got, c.want) {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// Summaries name options, never their values.
func TestConfigSummary(t *testing.T) {
	var n *ConfigNode
	if err := json.Unmarshal([]byte(protoDocTree), &n); err != nil {
		t.Fatal(err)
	}
	if got, want := n.Summary(), "options: [Foo Sessions.S1.Uri]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
