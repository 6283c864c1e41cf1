package authz

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/stepup"
)

// enablePasskeys turns on the passkey ceremonies of svc with the webauthn
// keys of cfg. The RP ID defaults to the issuer's host and the origins to
// the issuer's origin. An issuer on an IP address, such as
// http://127.0.0.1:8080, has no valid default RP ID (WebAuthn Level 3,
// Section 5.1.3 requires a domain), so passkeys stay off with a warning
// unless webauthn.rp_id is set.
func enablePasskeys(ctx context.Context, cfg *config.Config, store Store, svc *stepup.Service, logger *slog.Logger) error {
	issuer, err := url.Parse(cfg.Issuer)
	if err != nil {
		return fmt.Errorf("passkeys: issuer: %w", err)
	}
	rpID := cfg.WebAuthn.RPID
	if rpID == "" {
		rpID = issuer.Hostname()
		if net.ParseIP(rpID) != nil {
			logger.WarnContext(ctx, "passkeys disabled: the issuer host is an IP address, which is not a valid WebAuthn RP ID; "+
				"use an issuer on localhost or a domain, or set webauthn.rp_id", "issuer", cfg.Issuer)
			// An action that takes only a passkey can then never be
			// issued; say so for each one rather than let assistants meet
			// challenges nobody can complete.
			for _, a := range cfg.Actions {
				if a.StepUp == config.StepUpPasskey {
					logger.WarnContext(ctx, "action needs a passkey step-up, which cannot be completed while passkeys are disabled; "+
						"enable passkeys or allow push with step_up: any", "action", a.Scope)
				}
			}
			return nil
		}
	}
	origins := cfg.WebAuthn.Origins
	if len(origins) == 0 {
		origins = []string{issuer.Scheme + "://" + issuer.Host}
	}
	if err := svc.EnablePasskeys(ctx, stepup.PasskeyOptions{
		Store:         store,
		RPID:          rpID,
		RPDisplayName: cfg.WebAuthn.RPDisplayName,
		Origins:       origins,
	}); err != nil {
		return fmt.Errorf("passkeys: %w (check webauthn.rp_id and webauthn.origins)", err)
	}
	return nil
}

// passkeyRoutes adds the passkey registration, the ceremony page and its
// JSON API under base.
func (s *Server) passkeyRoutes(r *mux.Router, base string) {
	svc := s.stepup
	r.Handle(base+stepup.PathPasskeyRegistrations, http.HandlerFunc(svc.HandlePasskeyRegistrationOptions))
	r.Handle(base+stepup.PathPasskeys, http.HandlerFunc(svc.HandlePasskeys))
	r.Handle(base+stepup.PathPasskeys+"/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc.HandlePasskeyRemove(w, r, mux.Vars(r)["id"])
	}))
	r.Handle(base+stepup.PathPasskeyPage, http.HandlerFunc(svc.HandlePasskeyPage)).Methods(http.MethodGet, http.MethodHead)
	r.Handle(base+stepup.PathPasskeyStatic+"/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc.HandlePasskeyStatic(w, r, mux.Vars(r)["name"])
	})).Methods(http.MethodGet, http.MethodHead)
	r.Handle(base+stepup.PathPasskeyChallenges+"/{id}/options", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc.HandlePasskeyOptions(w, r, mux.Vars(r)["id"])
	})).Methods(http.MethodGet)
	r.Handle(base+stepup.PathPasskeyChallenges+"/{id}/assertion", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc.HandlePasskeyAssertion(w, r, mux.Vars(r)["id"])
	}))
}
