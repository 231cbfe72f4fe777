package sharing

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	current := func(vals map[string]string) Current {
		return func(gpu string, kind Kind) (string, error) {
			v, ok := vals[gpu+"/"+string(kind)]
			if !ok {
				return "", errors.New("no such GPU")
			}
			return v, nil
		}
	}
	hw := current(map[string]string{"GPU-a/timeSlice": "Medium", "GPU-a/computeMode": "Default", "GPU-b/timeSlice": ""})
	long := Setting{GPU: "GPU-a", Kind: TimeSlice, Value: "Long"}
	tests := []struct {
		name    string
		wants   []Setting
		others  []Hold
		want    []Hold
		wantErr []string
	}{
		{
			name:  "first holder records what the GPU had",
			wants: []Setting{long, {GPU: "GPU-a", Kind: ComputeMode, Value: "Default"}},
			want: []Hold{
				{Setting: long, Claim: "ns/c", ClaimUID: "uid-c", Previous: "Medium"},
				{Setting: Setting{GPU: "GPU-a", Kind: ComputeMode, Value: "Default"}, Claim: "ns/c", ClaimUID: "uid-c", Previous: "Default"},
			},
		},
		{
			name:   "a later holder copies Previous from the first, not the GPU's changed value",
			wants:  []Setting{long},
			others: []Hold{{Setting: long, Claim: "ns/a", ClaimUID: "uid-a", Previous: "Short"}},
			want:   []Hold{{Setting: long, Claim: "ns/c", ClaimUID: "uid-c", Previous: "Short"}},
		},
		{
			name:   "holds on another GPU or setting do not count",
			wants:  []Setting{long},
			others: []Hold{{Setting: Setting{GPU: "GPU-b", Kind: TimeSlice, Value: "Short"}, Claim: "ns/b"}, {Setting: Setting{GPU: "GPU-a", Kind: ComputeMode, Value: "Exclusive_Process"}, Claim: "ns/m"}},
			want:   []Hold{{Setting: long, Claim: "ns/c", ClaimUID: "uid-c", Previous: "Medium"}},
		},
		{
			name:  "unknown value is recorded as unknown",
			wants: []Setting{{GPU: "GPU-b", Kind: TimeSlice, Value: "Short"}},
			want:  []Hold{{Setting: Setting{GPU: "GPU-b", Kind: TimeSlice, Value: "Short"}, Claim: "ns/c", ClaimUID: "uid-c", Previous: ""}},
		},
		{
			name:    "another value than a holder's names both claims",
			wants:   []Setting{{GPU: "GPU-a", Kind: TimeSlice, Value: "Short"}},
			others:  []Hold{{Setting: long, Claim: "ns/a", ClaimUID: "uid-a", Previous: "Medium"}},
			wantErr: []string{"claim ns/c asks for timeSlice Short on GPU GPU-a", "claim ns/a (uid uid-a)", "holds it at Long"},
		},
		{
			name:    "two values for one setting in one claim",
			wants:   []Setting{long, {GPU: "GPU-a", Kind: TimeSlice, Value: "Short"}},
			wantErr: []string{"claim ns/c asks for timeSlice Long and Short on GPU GPU-a"},
		},
		{
			name:  "one setting asked twice is held once",
			wants: []Setting{long, long},
			want:  []Hold{{Setting: long, Claim: "ns/c", ClaimUID: "uid-c", Previous: "Medium"}},
		},
		{
			name:    "a GPU the backend cannot read",
			wants:   []Setting{{GPU: "GPU-z", Kind: TimeSlice, Value: "Long"}},
			wantErr: []string{"claim ns/c: read timeSlice of GPU GPU-z: no such GPU"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Plan("ns/c", "uid-c", tt.wants, tt.others, hw)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestRestores(t *testing.T) {
	ts := func(gpu, v, prev string) Hold {
		return Hold{Setting: Setting{GPU: gpu, Kind: TimeSlice, Value: v}, Previous: prev}
	}
	cm := func(gpu, v, prev string) Hold {
		return Hold{Setting: Setting{GPU: gpu, Kind: ComputeMode, Value: v}, Previous: prev}
	}
	tests := []struct {
		name         string
		mine, others []Hold
		want         []Setting
	}{
		{"last holder restores", []Hold{ts("a", "Long", "Medium"), cm("a", "Default", "Prohibited")}, nil,
			[]Setting{{GPU: "a", Kind: TimeSlice, Value: "Medium"}, {GPU: "a", Kind: ComputeMode, Value: "Prohibited"}}},
		{"another holder keeps it", []Hold{ts("a", "Long", "Medium")}, []Hold{ts("a", "Long", "Medium")}, nil},
		{"only the setting still held is kept", []Hold{ts("a", "Long", "Medium"), cm("a", "Default", "Prohibited")}, []Hold{cm("a", "Default", "Prohibited")},
			[]Setting{{GPU: "a", Kind: TimeSlice, Value: "Medium"}}},
		{"a hold on another GPU does not keep it", []Hold{ts("a", "Long", "Short")}, []Hold{ts("b", "Long", "Short")},
			[]Setting{{GPU: "a", Kind: TimeSlice, Value: "Short"}}},
		{"unknown previous restores the default", []Hold{ts("a", "Long", ""), cm("a", "Exclusive_Process", "")}, nil,
			[]Setting{{GPU: "a", Kind: TimeSlice, Value: "Default"}, {GPU: "a", Kind: ComputeMode, Value: "Default"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Restores(tt.mine, tt.others); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Restores:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestWanted(t *testing.T) {
	holds := []Hold{
		{Setting: Setting{GPU: "b", Kind: TimeSlice, Value: "Long"}, Claim: "ns/1"},
		{Setting: Setting{GPU: "a", Kind: TimeSlice, Value: "Short"}, Claim: "ns/2"},
		{Setting: Setting{GPU: "b", Kind: TimeSlice, Value: "Long"}, Claim: "ns/3"},
		{Setting: Setting{GPU: "a", Kind: TimeSlice, Value: "Long"}, Claim: "ns/4"},
	}
	got, errs := Wanted(holds)
	want := []Setting{{GPU: "a", Kind: TimeSlice, Value: "Short"}, {GPU: "b", Kind: TimeSlice, Value: "Long"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Wanted = %+v, want %+v", got, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "claims ns/2 and ns/4 hold timeSlice on GPU a at Short and Long") {
		t.Errorf("errs = %v, want one naming ns/2 and ns/4", errs)
	}
}
