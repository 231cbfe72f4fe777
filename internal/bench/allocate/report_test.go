package allocate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func comparisonForReport(t *testing.T) *Comparison {
	t.Helper()
	cmp, err := Compare(context.Background(), Options{Case: mustCase(t, "mig"), Nodes: 1, Claims: 3})
	if err != nil {
		t.Fatal(err)
	}
	return cmp
}

func TestWriteTable(t *testing.T) {
	cmp := comparisonForReport(t)
	var buf bytes.Buffer
	if err := WriteTable(&buf, []*Comparison{cmp}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	header := strings.Fields(lines[0])
	wantHeader := []string{"case", "layout", "nodes", "devices", "claims", "nodes/claim", "claims/s", "p50", "p90", "p99", "max", "gpudra/minimal"}
	if strings.Join(header, " ") != strings.Join(wantHeader, " ") {
		t.Fatalf("header %v, want %v", header, wantHeader)
	}
	minimal, gpudra := strings.Fields(lines[1]), strings.Fields(lines[2])
	if strings.Join(minimal[:5], " ") != "mig minimal 1 40 3" || len(minimal) != len(wantHeader)-1 {
		t.Errorf("minimal row %q", lines[1])
	}
	if strings.Join(gpudra[:5], " ") != "mig gpudra 1 40 3" || gpudra[len(gpudra)-1] != fmt.Sprintf("%.2f", cmp.Ratio) {
		t.Errorf("gpudra row %q, want ratio %.2f last", lines[2], cmp.Ratio)
	}
	if !strings.Contains(buf.String(), "mig: type, parentUUID, profile") {
		t.Errorf("table does not say what the minimal layout kept:\n%s", buf.String())
	}
}

func TestWriteJSON(t *testing.T) {
	cmp := comparisonForReport(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, []*Comparison{cmp}); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rows); err != nil {
		t.Fatalf("%v:\n%s", err, buf.String())
	}
	if len(rows) != 2 || rows[0]["layout"] != "minimal" || rows[1]["layout"] != "gpudra" {
		t.Fatalf("rows %v", rows)
	}
	for _, r := range rows {
		lat, ok := r["latencyMicroseconds"].(map[string]any)
		if r["claims"] != float64(3) || r["clusterFull"] != false || !ok || lat["p99"].(float64) <= 0 {
			t.Errorf("row %v", r)
		}
	}
	if _, ok := rows[0]["gpudraOverMinimal"]; ok {
		t.Error("ratio on the minimal row")
	}
	if rows[1]["gpudraOverMinimal"] != cmp.Ratio {
		t.Errorf("gpudra row ratio %v, want %v", rows[1]["gpudraOverMinimal"], cmp.Ratio)
	}
	if attrs, ok := rows[0]["minimalAttributes"].([]any); !ok || len(attrs) != 3 {
		t.Errorf("minimal row attributes %v", rows[0]["minimalAttributes"])
	}
}
