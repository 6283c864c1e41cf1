package stepup

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/storage"
)

// Notification is what an approver is shown for a push challenge.
type Notification struct {
	ChallengeID string `json:"challenge_id"`
	// RequestID is the exchange that created the challenge.
	RequestID            string          `json:"request_id"`
	Subject              string          `json:"subject"`
	Action               string          `json:"action"`
	Description          string          `json:"description"`
	Audience             string          `json:"audience"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	ClientID             string          `json:"client_id"`
	DeviceJKT            string          `json:"device_jkt"`
	// Numbers are the three numbers shown; one is the number the
	// assistant speaks.
	Numbers   []int     `json:"numbers"`
	Text      string    `json:"text"`
	ExpiresAt time.Time `json:"expires_at"`
	// URL is where the approver app posts its signed decision.
	URL string `json:"url"`
}

// Notifier informs an approver device that a push challenge is waiting.
// Notify must return at once, because the exchange calls it on its request
// path.
type Notifier interface {
	Notify(ctx context.Context, n Notification)
}

// NopNotifier sends nothing: approver apps pull their challenges.
type NopNotifier struct{}

// Notify implements Notifier.
func (NopNotifier) Notify(context.Context, Notification) {}

func (s *Service) notification(c *storage.StepUpChallenge) Notification {
	return Notification{
		ChallengeID:          c.ID,
		RequestID:            c.RequestID,
		Subject:              c.Subject,
		Action:               c.Action,
		Description:          c.Description,
		Audience:             c.Audience,
		AuthorizationDetails: json.RawMessage(c.DetailsJSON),
		ClientID:             c.ClientID,
		DeviceJKT:            c.DeviceJKT,
		Numbers:              c.Numbers,
		Text:                 approvalText(c),
		ExpiresAt:            c.ExpiresAt,
		URL:                  s.BaseURL + PathPushChallenges + "/" + c.ID,
	}
}

// approvalText is the sentence an approver reads before deciding.
func approvalText(c *storage.StepUpChallenge) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) at %s", c.Description, c.Action, c.Audience)
	if len(c.DetailsJSON) > 0 {
		var list []map[string]any
		if json.Unmarshal(c.DetailsJSON, &list) == nil && len(list) == 1 {
			var parts []string
			for _, k := range sortedKeys(list[0]) {
				if k != "type" {
					parts = append(parts, fmt.Sprintf("%s %v", k, list[0][k]))
				}
			}
			fmt.Fprintf(&b, " with %s", strings.Join(parts, ", "))
		}
	}
	jkt := c.DeviceJKT
	if len(jkt) > 8 {
		jkt = jkt[:8]
	}
	fmt.Fprintf(&b, ", requested by %s on device %s. Approve only if the assistant said one of these numbers and you asked for this.",
		c.ClientID, jkt)
	return b.String()
}

// Delivered records the first delivery of a challenge to the approver.
func (s *Service) Delivered(ctx context.Context, n Notification, channel string) {
	c, err := s.Store.StepUpChallenge(ctx, n.ChallengeID)
	if err != nil {
		s.Logger.ErrorContext(ctx, "step-up delivery not recorded", "request_id", n.RequestID, "error", err)
		return
	}
	rec := challengeRecord(c, s.Now(), audit.DecisionDelivered, "push_delivered",
		"The push challenge was delivered by "+channel+".")
	if err := s.Store.MarkStepUpDelivered(ctx, c.ID, s.Now(), rec); err != nil {
		s.Logger.ErrorContext(ctx, "step-up delivery not recorded", "request_id", n.RequestID, "error", err)
	}
}

// challengeRecord returns a step-up audit record about c, linked to the
// exchange that created it by its request ID.
func challengeRecord(c *storage.StepUpChallenge, now time.Time, d audit.Decision, reason, detail string) audit.Record {
	return audit.Record{
		Time: now.UTC(), RequestID: c.RequestID, Event: audit.EventStepUp,
		ClientID: c.ClientID, Subject: c.Subject, SubjectIssuer: c.SubjectIssuer,
		DeviceJKT: c.DeviceJKT, Action: c.Action, Audience: c.Audience,
		Decision: d, Reason: reason, Detail: detail,
		AuthorizationDetails: string(c.DetailsJSON), DetailsHash: c.DetailsHash,
		StepUpMethod: c.Method, Approver: c.Approver,
	}
}

// SignatureHeader carries the webhook body's HMAC-SHA256, as
// "sha256=" and the hex digest.
const SignatureHeader = "X-Sotto-Signature"

// Webhook posts each notification as JSON to a push gateway, signed with
// HMAC-SHA256 over the body. Notify only queues: one goroutine sends, and
// retries a failed post with exponential backoff.
type Webhook struct {
	url      string
	secret   []byte
	client   *http.Client
	logger   *slog.Logger
	queue    chan Notification
	attempts int
	backoff  time.Duration
	// delivered is called after a post the gateway accepted with 2xx.
	delivered func(ctx context.Context, n Notification)
	done      chan struct{}
	closeOnce sync.Once
}

// WebhookOptions configure NewWebhook. URL and Secret are required.
type WebhookOptions struct {
	URL    string
	Secret []byte
	// Client posts the notifications. Nil means a client with a 5s
	// timeout.
	Client *http.Client
	Logger *slog.Logger
	// Attempts is the number of posts per notification. Zero means 4.
	Attempts int
	// Backoff is the wait before the first retry; it doubles for each
	// later one. Zero means 500ms.
	Backoff time.Duration
	// QueueSize is the number of notifications waiting at most; beyond it
	// a notification is dropped and logged. Zero means 256.
	QueueSize int
	// Delivered is called after each accepted post.
	Delivered func(ctx context.Context, n Notification)
}

// NewWebhook starts the webhook's sender. Close stops it.
func NewWebhook(o WebhookOptions) *Webhook {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	w := &Webhook{
		url: o.URL, secret: o.Secret, client: o.Client, logger: o.Logger,
		queue: make(chan Notification, o.QueueSize), attempts: o.Attempts, backoff: o.Backoff,
		delivered: o.Delivered, done: make(chan struct{}),
	}
	go w.run()
	return w
}

// Notify implements Notifier by queueing n.
func (w *Webhook) Notify(ctx context.Context, n Notification) {
	select {
	case w.queue <- n:
	default:
		w.logger.ErrorContext(ctx, "push webhook queue full, notification dropped", "request_id", n.RequestID)
	}
}

// Close stops the sender after the notifications already queued.
func (w *Webhook) Close() {
	w.closeOnce.Do(func() { close(w.queue) })
	<-w.done
}

func (w *Webhook) run() {
	defer close(w.done)
	for n := range w.queue {
		w.send(n)
	}
}

// Sign returns the signature header value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *Webhook) send(n Notification) {
	ctx := context.Background()
	body, err := json.Marshal(n)
	if err != nil {
		w.logger.Error("push webhook body not encoded", "request_id", n.RequestID, "error", err)
		return
	}
	wait := w.backoff
	for attempt := 1; attempt <= w.attempts; attempt++ {
		if time.Now().After(n.ExpiresAt) {
			w.logger.Warn("push webhook gave up: the challenge expired", "request_id", n.RequestID, "attempts", attempt-1)
			return
		}
		err := w.post(ctx, body)
		if err == nil {
			if w.delivered != nil {
				w.delivered(ctx, n)
			}
			return
		}
		w.logger.Warn("push webhook post failed", "request_id", n.RequestID, "attempt", attempt, "error", err)
		if attempt < w.attempts {
			time.Sleep(wait)
			wait *= 2
		}
	}
	w.logger.Error("push webhook gave up", "request_id", n.RequestID, "attempts", w.attempts)
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(w.secret, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("gateway returned HTTP %d", resp.StatusCode)
	}
	return nil
}
