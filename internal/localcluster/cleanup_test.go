package localcluster

import (
	"reflect"
	"testing"
)

func TestSplitRule(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{`-N KUBE-SERVICES`, []string{"-N", "KUBE-SERVICES"}},
		{`-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS`,
			[]string{"-A", "INPUT", "-m", "comment", "--comment", "kubernetes health check service ports", "-j", "KUBE-NODEPORTS"}},
		{`-A POSTROUTING -s 10.244.0.3/32 -m comment --comment "name: \"gpudra-localcluster\" id: \"2db3\"" -j CNI-314a`,
			[]string{"-A", "POSTROUTING", "-s", "10.244.0.3/32", "-m", "comment", "--comment", `name: "gpudra-localcluster" id: "2db3"`, "-j", "CNI-314a"}},
		{`-A X --comment ""`, []string{"-A", "X", "--comment", ""}},
	}
	for _, tc := range tests {
		if got := splitRule(tc.line); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitRule(%s) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a/b`: "/a/b", `/a\040b`: "/a b", `/x\134y`: `/x\y`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
