package authz

import (
	"net/http"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
)

// supportedGrantTypes are the grant types the token endpoint serves.
var supportedGrantTypes = map[string]bool{
	exchange.GrantType:                true,
	config.GrantTypeRefreshToken:      true,
	config.GrantTypeAuthorizationCode: true,
	GrantTypeClientCredentials:        true,
}

// handleToken serves the token endpoint (RFC 6749 §3.2). The checks run
// in the order that decides the error when several fail: form syntax,
// client authentication, grant type, then the grant's own checks.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	start := time.Now()
	form, err := parseForm(r, s.cfg.HTTP.MaxBodyBytes)
	if err != nil {
		s.refuse(w, r, nil, err)
		return
	}
	if err := checkOneAuthMethod(r, form); err != nil {
		s.refuse(w, r, nil, err)
		return
	}

	grantType := form.Get("grant_type")
	if grantType == "" {
		s.refuse(w, r, nil, oauth.InvalidRequest("grant_type_missing",
			"The grant_type parameter is missing: use "+exchange.GrantType+", authorization_code or refresh_token."))
		return
	}
	if !supportedGrantTypes[grantType] {
		// The client is authenticated first, so an unknown client learns
		// invalid_client before anything about the grant types.
		if _, err := s.provider.AuthenticateClient(ctx, r, form); err != nil {
			s.refuse(w, r, nil, err)
			return
		}
		s.refuse(w, r, nil, oauth.New("unsupported_grant_type", "grant_type_unsupported",
			"The grant_type "+quote(grantType)+" is not supported: use "+exchange.GrantType+", authorization_code or refresh_token."))
		return
	}

	if grantType == GrantTypeClientCredentials {
		s.handleClientCredentials(w, r, form)
		return
	}

	// The assistant's context (sotto_context) reaches the audit record
	// only as its hash, so the log never contains the user's words.
	attempt := &exchange.Attempt{
		RequestID:   oauth.RequestID(ctx),
		Start:       start,
		ContextHash: audit.ContextHash(form.Get(contextParameter)),
	}
	ctx = exchange.WithAttempt(ctx, attempt)
	session := exchange.NewSession()
	ar, err := s.provider.NewAccessRequest(ctx, r, session)
	if err != nil {
		s.refuse(w, r, attempt, err)
		return
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.refuse(w, r, attempt, err)
		return
	}
	// RFC 9449 §8.2: a success may carry a new nonce. It is sent when the
	// proof used the previous slot's nonce, which stops being accepted at
	// the next rotation, or when the current slot is in its last quarter,
	// so a busy client never needs a use_dpop_nonce round trip.
	if exchange.NeedsNonce(ar.GetClient()) && attempt.Proof != nil {
		if current := s.nonces.Current(); attempt.Proof.Nonce != current || s.nonces.RotatesSoon() {
			w.Header().Set("DPoP-Nonce", current)
		}
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
	s.metrics.observeExchange(start, nil, attempt.StepUpMethod())
}

// contextParameter is the optional form parameter with the context an
// assistant may attach to a token request, such as the recognised intent.
const contextParameter = "sotto_context"

// refuse records a refused token request, logs it, and writes the error.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, attempt *exchange.Attempt, err error) {
	if attempt != nil {
		err = s.exchange.RecordRefusal(r.Context(), attempt, err)
	}
	e := oauth.From(err)
	s.metrics.observeExchange(startOf(attempt), e, "")
	clientID := ""
	if attempt != nil {
		clientID = attempt.ClientID
	}
	if e.Status < http.StatusInternalServerError {
		if clientID != "" {
			s.logger.InfoContext(r.Context(), "token request refused",
				"request_id", oauth.RequestID(r.Context()), "client_id", clientID,
				"error", e.Code, "reason", e.Reason)
		} else {
			s.refusals.Log(r.Context(), "token request refused before client identification",
				"request_id", oauth.RequestID(r.Context()), "error", e.Code, "reason", e.Reason)
		}
	}
	s.writeError(w, r, e)
}

// writeError writes e. RFC 6749 §5.2: an invalid_client response to a client
// that used the Authorization header is a 401 with a
// WWW-Authenticate challenge for the scheme it used.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := oauth.From(err)
	if e.Code == "invalid_client" {
		e.Status = http.StatusUnauthorized
		if _, _, ok := r.BasicAuth(); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="sotto", charset="UTF-8"`)
		}
	}
	oauth.Write(w, r, s.logger, e)
}

// quote returns s quoted for an error description, cut to 64 bytes so a
// hostile value cannot make the response large, and limited to the
// characters of RFC 6749 §5.2.
func quote(s string) string {
	return oauth.Quote(s)
}

// startOf returns when the token request began: the attempt's start, or
// now for a request rejected before an attempt existed, whose own work is
// then not measured.
func startOf(attempt *exchange.Attempt) time.Time {
	if attempt != nil && !attempt.Start.IsZero() {
		return attempt.Start
	}
	return time.Now()
}
