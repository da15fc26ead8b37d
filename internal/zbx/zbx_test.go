package zbx

import "testing"

func TestSentence(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "",
		"invalid option x":         "Invalid option x.",
		"Already fine.":            "Already fine.",
		"  ünicode first ":         "Ünicode first.",
		"cannot decode: 100% bad!": "Cannot decode: 100% bad!.",
	} {
		if got := Sentence(in); got != want {
			t.Errorf("Sentence(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistration(t *testing.T) {
	for _, c := range []struct {
		name string
		keys [][2]string // key, description
		want string      // error of the last Add; "" none
	}{
		{"+plain", [][2]string{{"tcp.status", "Count."}, {"tcp.status.get", "All."}}, ""},
		{"+capital non-ASCII", [][2]string{{"a_b-c.9", "Über."}}, ""},
		{"-key with brackets", [][2]string{{"tcp.status[]", "Count."}}, `metric key "tcp.status[]" may only contain A-Z a-z 0-9 . _ -`},
		{"-empty key", [][2]string{{"", "Count."}}, `metric key "" may only contain A-Z a-z 0-9 . _ -`},
		{"-lower-case description", [][2]string{{"a", "count."}}, "description of metric a must start with a capital letter and end with a period"},
		{"-lower-case non-ASCII", [][2]string{{"a", "über."}}, "description of metric a must start with a capital letter and end with a period"},
		{"-no period", [][2]string{{"a", "Count"}}, "description of metric a must start with a capital letter and end with a period"},
		{"-empty description", [][2]string{{"a", ""}}, "description of metric a must start with a capital letter and end with a period"},
		{"-duplicate", [][2]string{{"a", "A."}, {"a", "B."}}, "metric a declared twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Registration
			var err error
			for i, k := range c.keys {
				err = r.Add(k[0], k[1])
				if err != nil && i < len(c.keys)-1 {
					t.Fatalf("Add(%q, %q): %v", k[0], k[1], err)
				}
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Errorf("error %q, want %q", got, c.want)
			}
		})
	}
}
