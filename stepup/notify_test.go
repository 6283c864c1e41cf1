package stepup

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhookSignsAndRetries checks that a notification is posted with an
// HMAC-SHA256 signature over the body, retried after a failure, and
// reported delivered once the gateway accepts it.
func TestWebhookSignsAndRetries(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	var calls atomic.Int32
	var badSignature atomic.Bool
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(SignatureHeader) != Sign(secret, body) {
			badSignature.Store(true)
		}
		var n Notification
		if err := json.Unmarshal(body, &n); err != nil || n.ChallengeID != "c1" {
			badSignature.Store(true)
		}
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer gateway.Close()

	delivered := make(chan Notification, 1)
	hook := NewWebhook(WebhookOptions{
		URL: gateway.URL, Secret: secret, Backoff: 10 * time.Millisecond,
		Delivered: func(_ context.Context, n Notification) { delivered <- n },
	})
	defer hook.Close()

	start := time.Now()
	hook.Notify(context.Background(), Notification{ChallengeID: "c1", ExpiresAt: time.Now().Add(time.Minute)})
	if time.Since(start) > 50*time.Millisecond {
		t.Error("Notify blocked the caller")
	}
	select {
	case n := <-delivered:
		if n.ChallengeID != "c1" {
			t.Errorf("delivered challenge %q, want c1", n.ChallengeID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the notification was not delivered within 5s")
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("gateway got %d posts, want 2 (one failure, one retry)", got)
	}
	if badSignature.Load() {
		t.Error("a post had a wrong signature or body")
	}
}

// TestWebhookGivesUp checks that a gateway that keeps failing gets the
// configured number of attempts and no delivery is reported.
func TestWebhookGivesUp(t *testing.T) {
	var calls atomic.Int32
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer gateway.Close()
	var delivered atomic.Bool
	hook := NewWebhook(WebhookOptions{
		URL: gateway.URL, Secret: []byte("0123456789abcdef0123456789abcdef"), Attempts: 3, Backoff: time.Millisecond,
		Delivered: func(context.Context, Notification) { delivered.Store(true) },
	})
	hook.Notify(context.Background(), Notification{ChallengeID: "c1", ExpiresAt: time.Now().Add(time.Minute)})
	hook.Close()
	if got := calls.Load(); got != 3 {
		t.Errorf("gateway got %d posts, want 3", got)
	}
	if delivered.Load() {
		t.Error("a failed notification was reported delivered")
	}
}

// TestNumberChoices checks the number matching draw.
func TestNumberChoices(t *testing.T) {
	for range 200 {
		spoken, numbers, err := numberChoices()
		if err != nil {
			t.Fatal(err)
		}
		if len(numbers) != 3 || numbers[0] == numbers[1] || numbers[1] == numbers[2] {
			t.Fatalf("numbers = %v, want three distinct", numbers)
		}
		found := false
		for _, n := range numbers {
			if n < 10 || n > 99 {
				t.Fatalf("number %d is not two digits", n)
			}
			found = found || n == spoken
		}
		if !found {
			t.Fatalf("spoken %d is not among %v", spoken, numbers)
		}
	}
}
