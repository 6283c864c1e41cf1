package authz_test

import (
	"net/http"
	"testing"
)

// TestPushApprovalBySubjectTokenHolder plays an assistant that holds the
// user's ID token, as every assistant does because it sends that token as
// subject_token. It enrolls a key of its own as the user's approver
// device with the same ID token and tries to approve its own push
// challenge. The enrolment is accepted but stays pending until an
// administrator activates it, so the self-approval is refused.
func TestPushApprovalBySubjectTokenHolder(t *testing.T) {
	ts := newTestServer(t, "", "")
	dev := newDevice(t)
	form := ts.travelForm(travelDetails)

	// The user's real phone is active, so the action offers push.
	ts.enroll(newApprover(t), form.Get("subject_token"))

	rogue := newApprover(t)
	got := ts.enrollPending(rogue, form.Get("subject_token"))
	if got.status != http.StatusCreated || got.str("status") != "pending" {
		t.Fatalf("enroll with the assistant's subject_token: status %d, body %v; want 201 and status pending", got.status, got.body)
	}

	first := ts.exchange(dev, form)
	obj := stepUpObject(t, first)
	id, _ := obj["challenge_id"].(string)
	decided := ts.decide(rogue, id, "approve", spokenNumber(t, obj))
	if decided.str("error") != "access_denied" {
		t.Errorf("approval by a pending device: error %q, want access_denied", decided.str("error"))
	}
	if got := ts.retry(dev, form, id); got.status == http.StatusOK {
		t.Errorf("retry after the self-approval: status %d, want a refusal", got.status)
	}
	if got := ts.pending(rogue); got.status != http.StatusForbidden {
		t.Errorf("pending device lists challenges: status %d, want 403", got.status)
	}
}
