package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// currentVersion is the format version that encode writes. Bump it only for
// a change old decoders would misread (a renamed field, a new State);
// additive fields stay in the current version because decoders ignore
// fields they do not know.
const currentVersion = 1

// contents is what a checkpoint file holds, independent of its format version.
type contents struct {
	version int
	// bootID is the boot in which the file was last written.
	bootID string
	claims map[string]Claim
}

// decoders maps each format version ever written to its decoder. A new
// version adds an entry; old entries stay so that old files keep loading,
// each decoder migrating its records into today's Claim.
var decoders = map[int]func(data []byte) (contents, error){
	1: decodeV1,
}

// decode reads the format version, then hands the file to that version's
// decoder. Any error means the file cannot be trusted as a whole.
func decode(data []byte) (contents, error) {
	var header struct {
		Version *int `json:"version"`
	}
	// Unmarshal scans the whole input, so truncated or trailing garbage is
	// caught here regardless of version.
	if err := json.Unmarshal(data, &header); err != nil {
		return contents{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	if header.Version == nil {
		return contents{}, errors.New("parse checkpoint: no version field")
	}
	v := *header.Version
	decodeVersion, ok := decoders[v]
	if !ok {
		if v > currentVersion {
			return contents{}, fmt.Errorf("checkpoint version %d is newer than this gpudra supports (%d)", v, currentVersion)
		}
		return contents{}, fmt.Errorf("checkpoint version %d is unknown", v)
	}
	c, err := decodeVersion(data)
	if err != nil {
		return contents{}, fmt.Errorf("decode checkpoint version %d: %w", v, err)
	}
	c.version = v
	return c, nil
}

// encode writes c in the current format. encoding/json sorts map keys, so
// the same claims always give the same bytes.
func encode(bootID string, claims map[string]Claim) ([]byte, error) {
	f := fileV1{Version: 1, BootID: bootID, Claims: make(map[string]claimV1, len(claims))}
	for uid, c := range claims {
		f.Claims[uid] = toV1(c)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return append(data, '\n'), nil
}

// fileV1 is format version 1. Its field names and meanings are frozen:
// files in the field depend on them.
type fileV1 struct {
	Version int                `json:"version"`
	BootID  string             `json:"bootID"`
	Claims  map[string]claimV1 `json:"claims"`
}

type claimV1 struct {
	UID        string     `json:"uid"`
	Namespace  string     `json:"namespace,omitempty"`
	Name       string     `json:"name,omitempty"`
	State      string     `json:"state"`
	BootID     string     `json:"bootID,omitempty"`
	PreparedAt time.Time  `json:"preparedAt,omitzero"`
	Devices    []deviceV1 `json:"devices,omitempty"`
	// Settings was added in v1 without a version bump: decoders before it
	// ignore it, and they had no sharing to misread it for. A downgrade
	// forgets the holds, so the settings stay until set again.
	Settings []settingHoldV1 `json:"settings,omitempty"`
	// MPS was added in v1 the same way; a downgraded plugin forgets the
	// daemons, which keep running until stopped by hand.
	MPS []mpsDaemonV1 `json:"mps,omitempty"`
}

type mpsDaemonV1 struct {
	ID                     string        `json:"id"`
	Devices                []string      `json:"devices,omitempty"`
	PID                    int           `json:"pid,omitempty"`
	StartTime              uint64        `json:"startTime,omitempty"`
	ActiveThreadPercentage *int          `json:"activeThreadPercentage,omitempty"`
	PinnedMemoryBytes      map[int]int64 `json:"pinnedMemoryBytes,omitempty"`
}

type settingHoldV1 struct {
	GPU      string `json:"gpu"`
	Kind     string `json:"kind"`
	Value    string `json:"value"`
	Previous string `json:"previous,omitempty"`
}

type deviceV1 struct {
	Request      string   `json:"request,omitempty"`
	Pool         string   `json:"pool,omitempty"`
	Device       string   `json:"device"`
	UUID         string   `json:"uuid,omitempty"`
	Type         string   `json:"type,omitempty"`
	ParentUUID   string   `json:"parentUUID,omitempty"`
	CDIDeviceIDs []string `json:"cdiDeviceIDs,omitempty"`
	AdminAccess  bool     `json:"adminAccess,omitempty"`
	// MIG was added in v1 without a version bump: decoders before it
	// ignore it, and they had no dynamic MIG to misread it for.
	MIG *migSlotV1 `json:"mig,omitempty"`
}

type migSlotV1 struct {
	ParentUUID     string `json:"parentUUID"`
	Profile        string `json:"profile,omitempty"`
	GIProfileID    int    `json:"giProfileID"`
	PlacementStart int    `json:"placementStart"`
	PlacementSize  int    `json:"placementSize"`
}

func decodeV1(data []byte) (contents, error) {
	var f fileV1
	if err := json.Unmarshal(data, &f); err != nil {
		return contents{}, err
	}
	c := contents{bootID: f.BootID, claims: make(map[string]Claim, len(f.Claims))}
	for key, rec := range f.Claims {
		if key == "" {
			return contents{}, errors.New("claim with empty key")
		}
		// The key is authoritative; a record may omit the UID it is filed under.
		if rec.UID != "" && rec.UID != key {
			return contents{}, fmt.Errorf("claim %s: filed under key %q", rec.UID, key)
		}
		rec.UID = key
		claim := fromV1(rec)
		if err := claim.validate(); err != nil {
			return contents{}, err
		}
		c.claims[key] = claim.normalized()
	}
	return c, nil
}

func toV1(c Claim) claimV1 {
	rec := claimV1{
		UID:        c.UID,
		Namespace:  c.Namespace,
		Name:       c.Name,
		State:      string(c.State),
		BootID:     c.BootID,
		PreparedAt: c.PreparedAt,
	}
	for _, h := range c.Settings {
		rec.Settings = append(rec.Settings, settingHoldV1(h))
	}
	for _, m := range c.MPS {
		rec.MPS = append(rec.MPS, mpsDaemonV1(m))
	}
	for _, d := range c.Devices {
		rec.Devices = append(rec.Devices, deviceV1{
			Request:      d.Request,
			Pool:         d.Pool,
			Device:       d.Device,
			UUID:         d.UUID,
			Type:         string(d.Type),
			ParentUUID:   d.ParentUUID,
			CDIDeviceIDs: d.CDIDeviceIDs,
			AdminAccess:  d.AdminAccess,
			MIG:          (*migSlotV1)(d.MIG),
		})
	}
	return rec
}

func fromV1(rec claimV1) Claim {
	c := Claim{
		UID:        rec.UID,
		Namespace:  rec.Namespace,
		Name:       rec.Name,
		State:      State(rec.State),
		BootID:     rec.BootID,
		PreparedAt: rec.PreparedAt,
	}
	for _, d := range rec.Devices {
		c.Devices = append(c.Devices, Device{
			Request:      d.Request,
			Pool:         d.Pool,
			Device:       d.Device,
			UUID:         d.UUID,
			Type:         DeviceType(d.Type),
			ParentUUID:   d.ParentUUID,
			CDIDeviceIDs: d.CDIDeviceIDs,
			AdminAccess:  d.AdminAccess,
			MIG:          (*MIGSlot)(d.MIG),
		})
	}
	for _, h := range rec.Settings {
		c.Settings = append(c.Settings, SettingHold(h))
	}
	for _, m := range rec.MPS {
		c.MPS = append(c.MPS, MPSDaemon(m))
	}
	return c
}
