package authz

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/login"
)

// newLogin returns the handler of the browser endpoints.
func (s *Server) newLogin(o Options) (*login.Handler, error) {
	// The consent page lists the live catalog, which the admin API may
	// have changed since the start.
	actions := func() []login.Action {
		catalog := s.Catalog()
		out := make([]login.Action, 0, catalog.Len())
		for _, scope := range catalog.Scopes() {
			a, _ := catalog.Lookup(scope)
			out = append(out, login.Action{Scope: a.Scope, Description: a.Description, Groups: a.Groups})
		}
		return out
	}
	return login.New(login.Options{
		Issuer:        s.cfg.Issuer,
		Login:         s.cfg.Login,
		SubjectPrefix: s.cfg.LoginSubjectPrefix(),
		Client: func(id string) (login.Client, bool) {
			c, ok := s.clients.lookup(id)
			if !ok {
				return login.Client{}, false
			}
			return login.Client{
				ID: c.ID, Name: c.Name, Public: c.Public, FirstParty: c.FirstParty,
				RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes,
			}, true
		},
		AuthenticateClient: func(ctx context.Context, r *http.Request, form url.Values) (string, error) {
			if err := checkOneAuthMethod(r, form); err != nil {
				return "", err
			}
			c, err := s.provider.AuthenticateClient(ctx, r, form)
			if err != nil {
				return "", err
			}
			return c.GetID(), nil
		},
		Actions:    actions,
		Store:      s.store,
		HTTPClient: o.HTTPClient,
		Logger:     s.logger,
		Now:        s.now,
	})
}

// handleLogout serves the logout endpoint. The client authenticates as
// at the revocation endpoint and sends the session's refresh token or
// session access token as token. The session ends with every token of it
// or derived from it, in one transaction with an audit record (event
// logout) that counts them. For a session of a browser login, the answer
// carries end_session_url, the corporate IdP's logout (OpenID Connect
// RP-Initiated Logout 1.0) for the app to open in the browser, when the
// IdP's metadata has an end_session_endpoint.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, err := parseForm(r, s.cfg.HTTP.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkOneAuthMethod(r, form); err != nil {
		s.writeError(w, r, err)
		return
	}
	fc, err := s.provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	client := fc.(*Client)

	token := form.Get("token")
	if token == "" {
		s.writeError(w, r, oauth.InvalidRequest("token_missing",
			"The token parameter is missing: send the session's refresh_token or session access token."))
		return
	}
	var sessionID, clientID string
	if exchange.IsRefreshToken(token) {
		rt, err := s.store.RefreshToken(ctx, exchange.TokenSignature(token))
		if err == nil {
			sessionID, clientID = rt.SessionID, rt.ClientID
		}
	} else if rec, err := exchange.LookupToken(ctx, s.store, token); err == nil && s.isSessionAccessToken(rec) {
		sessionID, clientID = rec.SessionID, rec.ClientID
	}
	if sessionID == "" {
		s.writeError(w, r, oauth.InvalidRequest("logout_token_unknown",
			"The token is not a refresh token or session access token of this server; a session that ended needs no logout."))
		return
	}
	if clientID != client.ID {
		s.refuseOtherClient(w, r, client, sessionID)
		return
	}

	session, err := s.store.Session(ctx, sessionID)
	if err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	now := s.now().UTC()
	n, err := s.store.RevokeSession(ctx, sessionID, now, audit.Record{
		Time:          now,
		RequestID:     oauth.RequestID(ctx),
		Event:         audit.EventLogout,
		ClientID:      client.ID,
		Subject:       session.Subject,
		SubjectIssuer: session.SubjectIssuer,
		DeviceJKT:     session.DeviceJKT,
		Action:        exchange.SessionScope,
		Audience:      s.cfg.Issuer,
		Decision:      audit.DecisionRevoked,
		Reason:        "logout",
		Detail:        "The client ended the session at the logout endpoint.",
		TokenID:       sessionID,
	})
	if err != nil {
		s.writeError(w, r, oauth.ServerError(err))
		return
	}
	s.logger.InfoContext(ctx, "session ended by logout",
		"request_id", oauth.RequestID(ctx), "client_id", client.ID, "session_id", sessionID, "tokens_ended", n)

	body := map[string]any{"tokens_ended": n}
	if s.login != nil && strings.HasPrefix(session.Parent, "login:") {
		endSession, err := s.login.EndSessionURL(ctx, client.ID)
		if err != nil {
			// The session has ended; only the IdP's logout is missing.
			s.logger.WarnContext(ctx, "end_session_url not built",
				"request_id", oauth.RequestID(ctx), "session_id", sessionID, "error", err)
		} else if endSession != "" {
			body["end_session_url"] = endSession
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}
