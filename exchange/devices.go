package exchange

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// Device trust levels an action may require, lowest first.
const (
	DeviceTrustAny        = "any"
	DeviceTrustRegistered = storage.TrustRegistered
	DeviceTrustManaged    = storage.TrustManaged
)

// Trust levels of a device key as audit records name them, beyond the
// stored registered and managed.
const (
	DeviceUnregistered = "unregistered"
	DeviceRevoked      = "revoked"
)

// DeviceStore is the device registry the exchange reads.
type DeviceStore interface {
	DeviceStanding(ctx context.Context, jkt string) (storage.DeviceStanding, error)
	TouchDevice(ctx context.Context, jkt string, at time.Time) error
}

// deviceTrust returns the trust level of the key jkt for subject: the
// stored level of a device enrolled for subject, DeviceRevoked for a
// revoked device of any subject, and DeviceUnregistered otherwise.
// A key enrolled for someone else counts as unregistered for subject.
func (h *Handler) deviceTrust(ctx context.Context, jkt, subject string) (string, error) {
	if h.Devices == nil {
		return DeviceUnregistered, nil
	}
	d, err := h.Devices.DeviceStanding(ctx, jkt)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return DeviceUnregistered, nil
	case err != nil:
		return "", err
	case d.Revoked:
		return DeviceRevoked, nil
	case d.Subject != subject:
		return DeviceUnregistered, nil
	}
	return d.Trust, nil
}

// trustRank orders the trust levels; a device satisfies an action whose
// required rank is not above its own.
var trustRank = map[string]int{
	DeviceUnregistered:    0,
	DeviceTrustAny:        0,
	DeviceTrustRegistered: 1,
	DeviceTrustManaged:    2,
}

// checkDevice applies the action's device_trust to the device key's trust
// level. A revoked device is refused for every action, because revoking
// or wiping a device means its key must not be used again.
func checkDevice(trust string, action *Action) *oauth.Error {
	if trust == DeviceRevoked {
		return oauth.New("access_denied", "device_revoked",
			"The device key was revoked by an administrator; generate a new DPoP key on the device and enrol it.")
	}
	if trustRank[trust] >= trustRank[action.DeviceTrust] {
		return nil
	}
	remedy := "enrol the device key at the devices endpoint"
	if action.DeviceTrust == DeviceTrustManaged {
		remedy = "enrol the device key with an attestation from device management, or ask an administrator to mark the device managed"
	}
	e := oauth.New("access_denied", "device_trust_insufficient", fmt.Sprintf(
		"The action %s requires a %s device, and this device key is %s: %s.",
		action.Scope, action.DeviceTrust, trust, remedy))
	return e
}

// lastSeen records when this process last updated each device's
// last-seen time, so it starts at most one background update a minute per
// device. TouchDevice skips rows written less than a minute before, which
// limits the writes of other replicas too.
type lastSeen struct {
	mu      sync.Mutex
	touched map[string]time.Time
}

const touchInterval = time.Minute

// maxTracked bounds the map; when it is full the map is cleared, which
// costs at most one extra write per device.
const maxTracked = 100_000

func (h *Handler) touchDevice(jkt string, now time.Time) {
	if h.Devices == nil {
		return
	}
	ls := &h.seen
	ls.mu.Lock()
	if ls.touched == nil || len(ls.touched) >= maxTracked {
		ls.touched = map[string]time.Time{}
	}
	if last, ok := ls.touched[jkt]; ok && now.Sub(last) < touchInterval {
		ls.mu.Unlock()
		return
	}
	ls.touched[jkt] = now
	ls.mu.Unlock()

	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Devices.TouchDevice(ctx, jkt, now); err != nil {
			h.Logger.Warn("device last-seen time not updated", "device_jkt", jkt, "error", err)
		}
	}()
}
