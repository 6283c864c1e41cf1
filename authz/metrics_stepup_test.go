package authz

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sotto-auth/sotto/internal/oauth"
)

// TestStepUpMetrics checks that each step-up outcome is counted once,
// with no user identifier in its labels.
func TestStepUpMetrics(t *testing.T) {
	m := newMetrics("v1")
	started := oauth.New(oauth.CodeInsufficientUserAuthentication, "step_up_required", "step-up needed")
	started.Extra = map[string]any{"step_up": map[string]any{"challenge_id": "c"}}
	m.observeExchange(time.Now(), started, "")
	m.observeExchange(time.Now(), oauth.New(oauth.CodeInsufficientUserAuthentication, "step_up_required", "no challenge"), "")
	m.observeExchange(time.Now(), oauth.New("access_denied", "step_up_denied", "denied"), "")
	m.observeExchange(time.Now(), oauth.New("expired_token", "step_up_expired", "expired"), "")
	m.observeExchange(time.Now(), nil, "push")
	m.observeExchange(time.Now(), nil, "")

	for _, tt := range []struct {
		outcome, method string
		want            float64
	}{
		{"started", "", 1},
		{"denied", "", 1},
		{"abandoned", "", 1},
		{"completed", "push", 1},
	} {
		if got := testutil.ToFloat64(m.stepUps.WithLabelValues(tt.outcome, tt.method)); got != tt.want {
			t.Errorf("sotto_step_up_total{outcome=%q,method=%q} = %v, want %v", tt.outcome, tt.method, got, tt.want)
		}
	}
}
