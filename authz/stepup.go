package authz

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/stepup"
)

// identityVerifier adapts the exchange's subject verifier to the step-up
// service, which authenticates approver enrollment with a corporate ID
// token.
type identityVerifier struct{ subjects *exchange.SubjectVerifier }

func (v identityVerifier) VerifyIdentity(ctx context.Context, token string) (string, string, error) {
	s, err := v.subjects.Verify(ctx, token)
	if err != nil {
		return "", "", err
	}
	return s.ID, s.Issuer, nil
}

// newStepUp builds the step-up service and, when a push gateway is
// configured, its webhook notifier.
func newStepUp(cfg *config.Config, store Store, subjects *exchange.SubjectVerifier, o Options) (*stepup.Service, *stepup.Webhook) {
	svc := stepup.New(stepup.Options{
		Store:        store,
		Identities:   identityVerifier{subjects},
		BaseURL:      cfg.Issuer,
		ChallengeTTL: time.Duration(cfg.StepUp.ChallengeTTL),
		Interval:     time.Duration(cfg.StepUp.Interval),
		Push: stepup.PushLimits{
			MaxChallenges: cfg.StepUp.Push.MaxChallenges,
			Window:        time.Duration(cfg.StepUp.Push.Window),
			MaxDenials:    cfg.StepUp.Push.MaxDenials,
			Lockout:       time.Duration(cfg.StepUp.Push.Lockout),
			SelfEnrolment: cfg.StepUp.Push.Enrolment == config.EnrolmentSelf,
		},
		DPoP:   &devicebind.Verifier{Window: time.Duration(cfg.DPoP.IATWindow), Now: o.Now},
		Logger: o.Logger,
		Now:    o.Now,
	})
	hook := cfg.StepUp.Push.Webhook
	if hook.URL == "" {
		return svc, nil
	}
	webhook := stepup.NewWebhook(stepup.WebhookOptions{
		URL:    hook.URL,
		Secret: []byte(hook.Secret),
		Client: o.WebhookClient,
		Logger: o.Logger,
		Delivered: func(ctx context.Context, n stepup.Notification) {
			svc.Delivered(ctx, n, "the push webhook")
		},
	})
	svc.Notifier = webhook
	return svc, webhook
}

// strongACRValues maps each trusted issuer to its strong_acr_values.
func strongACRValues(cfg *config.Config) map[string][]string {
	out := make(map[string][]string, len(cfg.TrustedIssuers))
	for _, ti := range cfg.TrustedIssuers {
		if len(ti.StrongACRValues) > 0 {
			out[ti.Issuer] = append([]string(nil), ti.StrongACRValues...)
		}
	}
	return out
}

// stepUpRoutes adds the approver endpoints under base.
func (s *Server) stepUpRoutes(r *mux.Router, base string) {
	r.Handle(base+stepup.PathApprovers, http.HandlerFunc(s.stepup.HandleEnroll))
	r.Handle(base+stepup.PathPushChallenges, http.HandlerFunc(s.stepup.HandlePending)).Methods(http.MethodGet)
	r.Handle(base+stepup.PathPushChallenges+"/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.stepup.HandleDecision(w, r, mux.Vars(r)["id"])
	}))
	s.passkeyRoutes(r, base)
}

// Close stops the background senders of the server, such as the push
// webhook, after what they have queued.
func (s *Server) Close() {
	if s.webhook != nil {
		s.webhook.Close()
	}
}
