package checkpoint

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fixtureBoot = "0b4a3e0c-2f7e-4c1a-9d55-0d5c7f1e9a11"

func TestDecodeFixtures(t *testing.T) {
	tests := []struct {
		file string
		want map[string]Claim
	}{
		{
			// Written before preparedAt and parentUUID existed; the second
			// record predates storing the UID inside the record.
			file: "testdata/v1-minimal.json",
			want: map[string]Claim{
				"6f1c2d3e-aaaa-4bbb-8ccc-000000000001": {
					UID: "6f1c2d3e-aaaa-4bbb-8ccc-000000000001", Namespace: "team-a", Name: "trainer-gpu",
					State: PrepareCompleted, BootID: fixtureBoot,
					Devices: []Device{{
						Request: "gpu", Pool: "node-1", Device: "gpu-0",
						UUID: "GPU-11111111-2222-3333-4444-555555555555", Type: DeviceTypeGPU,
						CDIDeviceIDs: []string{"k8s.gpu.nvidia.com/claim=6f1c2d3e-aaaa-4bbb-8ccc-000000000001-gpu-0"},
					}},
				},
				"6f1c2d3e-aaaa-4bbb-8ccc-000000000002": {
					UID: "6f1c2d3e-aaaa-4bbb-8ccc-000000000002", State: PrepareStarted, BootID: fixtureBoot,
				},
			},
		},
		{
			// Written by a newer gpudra that added fields at every level.
			file: "testdata/v1-unknown-fields.json",
			want: map[string]Claim{
				"6f1c2d3e-aaaa-4bbb-8ccc-000000000003": {
					UID: "6f1c2d3e-aaaa-4bbb-8ccc-000000000003", Namespace: "team-b", Name: "inference-mig",
					State: PrepareCompleted, BootID: fixtureBoot,
					PreparedAt: time.Date(2026, 8, 1, 10, 20, 30, 500_000_000, time.UTC),
					Devices: []Device{{
						Request: "mig", Pool: "node-1", Device: "gpu-1-mig-1g10gb-19-0",
						UUID: "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", Type: DeviceTypeMIG,
						ParentUUID:   "GPU-66666666-7777-8888-9999-000000000000",
						CDIDeviceIDs: []string{"k8s.gpu.nvidia.com/claim=6f1c2d3e-aaaa-4bbb-8ccc-000000000003-gpu-1-mig-1g10gb-19-0"},
						AdminAccess:  true,
					}},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.version != 1 || got.bootID != fixtureBoot {
				t.Errorf("version, bootID = %d, %q; want 1, %q", got.version, got.bootID, fixtureBoot)
			}
			if !reflect.DeepEqual(got.claims, tt.want) {
				t.Errorf("claims:\n got %+v\nwant %+v", got.claims, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid, err := os.ReadFile("testdata/v1-minimal.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    string
		wantErr string
	}{
		{"empty file", "", "unexpected end of JSON input"},
		{"truncated", string(valid[:len(valid)/2]), "unexpected end of JSON input"},
		{"garbage", "\x00\x17PK\x03\x04 not json", "invalid character"},
		{"trailing garbage", string(valid) + "}", "invalid character"},
		{"not an object", `[1]`, "cannot unmarshal array"},
		{"null", `null`, "no version field"},
		{"no version", `{"claims": {}}`, "no version field"},
		{"version as string", `{"version": "1"}`, "cannot unmarshal string"},
		{"version zero", `{"version": 0, "claims": {}}`, "version 0 is unknown"},
		{"version from the future", `{"version": 2, "claims": {}}`, "version 2 is newer than this gpudra supports (1)"},
		{"claims not a map", `{"version": 1, "claims": []}`, "cannot unmarshal array"},
		{"empty key", `{"version": 1, "claims": {"": {"state": "PrepareStarted"}}}`, "claim with empty key"},
		{"uid differs from key", `{"version": 1, "claims": {"a": {"uid": "b", "state": "PrepareStarted"}}}`, `claim b: filed under key "a"`},
		{"unknown state", `{"version": 1, "claims": {"a": {"state": "Preparing"}}}`, `claim a: unknown state "Preparing"`},
		{"null record", `{"version": 1, "claims": {"a": null}}`, `claim a: unknown state ""`},
		{"bad time", `{"version": 1, "claims": {"a": {"state": "PrepareStarted", "preparedAt": "yesterday"}}}`, "cannot parse"},
		{"time outside RFC 3339 years after UTC", `{"version": 1, "claims": {"a": {"state": "PrepareStarted", "preparedAt": "0000-01-01T00:00:00+01:00"}}}`, "year -1 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("decode error = %v; want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestEncodeIsDeterministicAndDecodable(t *testing.T) {
	claims := map[string]Claim{}
	for _, uid := range []string{"c", "a", "b"} {
		claims[uid] = Claim{UID: uid, State: PrepareCompleted, BootID: "boot"}
	}
	first, err := encode("boot", claims)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := encode("boot", claims)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatalf("encode is not deterministic:\n%s\n%s", first, again)
		}
	}
	got, err := decode(first)
	if err != nil {
		t.Fatalf("decode own output: %v", err)
	}
	if !reflect.DeepEqual(got.claims, claims) || got.version != currentVersion {
		t.Errorf("decode(encode) = %+v, version %d; want %+v", got.claims, got.version, claims)
	}
}

// FuzzLoad checks that no input makes the loader panic, and that whatever
// it accepts survives a write and a reload unchanged.
func FuzzLoad(f *testing.F) {
	for _, file := range []string{"testdata/v1-minimal.json", "testdata/v1-unknown-fields.json", "testdata/v1-dynamic-mig.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decode(data)
		if err != nil {
			return
		}
		out, err := encode(got.bootID, got.claims)
		if err != nil {
			t.Fatalf("accepted input does not encode: %v", err)
		}
		again, err := decode(out)
		if err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, out)
		}
		if again.bootID != got.bootID || !reflect.DeepEqual(again.claims, got.claims) {
			t.Fatalf("reload changed contents:\n got %+v\nwant %+v", again.claims, got.claims)
		}
	})
}

// TestDecodeDynamicMIGSlot: a record of a MIG device prepare is about to
// cut keeps its slot through decode, encode and decode again.
func TestDecodeDynamicMIGSlot(t *testing.T) {
	got := decodeRoundTrip(t, "testdata/v1-dynamic-mig.json")
	want := &MIGSlot{ParentUUID: "GPU-aaaa", Profile: "1g.10gb", GIProfileID: 19, PlacementStart: 6, PlacementSize: 1}
	dev := got.claims["uid-1"].Devices[0]
	if !reflect.DeepEqual(dev.MIG, want) || dev.UUID != "" || got.claims["uid-1"].State != PrepareStarted {
		t.Fatalf("decoded %+v (MIG %+v), want slot %+v and no UUID yet", dev, dev.MIG, want)
	}
	// The copy a caller gets shares nothing with the store's.
	c := got.claims["uid-1"].normalized()
	c.Devices[0].MIG.PlacementStart = 0
	if got.claims["uid-1"].Devices[0].MIG.PlacementStart != 6 {
		t.Error("normalized shares the MIG slot")
	}
}

// TestDecodeSettings: the GPU settings and MPS daemons a claim holds survive decode,
// encode and decode again; an unknown previous value stays unknown.
func TestDecodeSettings(t *testing.T) {
	got := decodeRoundTrip(t, "testdata/v1-settings.json")
	want := []SettingHold{
		{GPU: "GPU-dddd", Kind: "timeSlice", Value: "Long", Previous: "Medium"},
		{GPU: "GPU-dddd", Kind: "computeMode", Value: "Default"},
	}
	if s := got.claims["uid-1"].Settings; !reflect.DeepEqual(s, want) {
		t.Fatalf("settings %+v, want %+v", s, want)
	}
	pct := 40
	wantMPS := []MPSDaemon{{ID: "uid-1", Devices: []string{"GPU-dddd"}, PID: 4242, StartTime: 987654, ActiveThreadPercentage: &pct, PinnedMemoryBytes: map[int]int64{0: 20 << 30}}}
	if m := got.claims["uid-1"].MPS; !reflect.DeepEqual(m, wantMPS) {
		t.Fatalf("MPS %+v, want %+v", m, wantMPS)
	}
	c := got.claims["uid-1"].normalized()
	c.Settings[0].Value = "Short"
	c.MPS[0].Devices[0] = "GPU-other"
	c.MPS[0].PinnedMemoryBytes[0] = 1
	*c.MPS[0].ActiveThreadPercentage = 1
	if m := got.claims["uid-1"].MPS[0]; m.PinnedMemoryBytes[0] != 20<<30 || *m.ActiveThreadPercentage != 40 {
		t.Error("normalized shares the MPS limits")
	}
	if got.claims["uid-1"].Settings[0].Value != "Long" || got.claims["uid-1"].MPS[0].Devices[0] != "GPU-dddd" {
		t.Error("normalized shares the settings or the MPS daemons")
	}
}

// decodeRoundTrip decodes a fixture and checks that encoding and decoding
// it again changes nothing.
func decodeRoundTrip(t *testing.T, path string) contents {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := encode(got.bootID, got.claims)
	if err != nil {
		t.Fatal(err)
	}
	again, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.claims, got.claims) {
		t.Errorf("%s: round trip changed the records:\n got %+v\nwant %+v", path, again.claims, got.claims)
	}
	return got
}
