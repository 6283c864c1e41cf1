package authz

import (
	"encoding/json"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/login"
)

// buildMetadata returns the authorization server metadata (RFC 8414 §2).
func (s *Server) buildMetadata() ([]byte, error) {
	iss := s.cfg.Issuer
	dpopAlgs := make([]string, 0, len(devicebind.DefaultAlgorithms))
	for _, a := range devicebind.DefaultAlgorithms {
		dpopAlgs = append(dpopAlgs, string(a))
	}
	md := map[string]any{
		"issuer":                 iss,
		"token_endpoint":         iss + PathToken,
		"jwks_uri":               iss + PathJWKS,
		"introspection_endpoint": iss + PathIntrospect,
		"revocation_endpoint":    iss + PathRevoke,
		"scopes_supported":       append(s.Catalog().Scopes(), exchange.SessionScope),
		// RFC 8414 §2 requires response_types_supported. Without a
		// login section there is no authorization endpoint, so no
		// response type is offered.
		"response_types_supported":                      []string{},
		"grant_types_supported":                         []string{exchange.GrantType, config.GrantTypeRefreshToken, GrantTypeClientCredentials},
		"token_endpoint_auth_methods_supported":         []string{"none", "client_secret_basic", "client_secret_post"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":    []string{"none", "client_secret_basic", "client_secret_post"},
		// RFC 9449 §5.1.
		"dpop_signing_alg_values_supported": dpopAlgs,
		// RFC 8693 token types this server accepts as subject_token_type.
		"token_types_supported": []string{exchange.TokenTypeIDToken, exchange.TokenTypeJWT, exchange.TokenTypeAccessToken},
		"acr_values_supported":  []string{exchange.ACRPasskey, exchange.ACRPush},
	}
	if s.login != nil {
		md["authorization_endpoint"] = iss + login.PathAuthorize
		md["response_types_supported"] = []string{"code"}
		md["response_modes_supported"] = []string{"query"}
		md["grant_types_supported"] = []string{config.GrantTypeAuthorizationCode, exchange.GrantType, config.GrantTypeRefreshToken}
		// RFC 7636 §4.3 and RFC 9700 §2.1.1: S256 only, never plain.
		md["code_challenge_methods_supported"] = []string{"S256"}
		// RFC 9126 §5.
		md["pushed_authorization_request_endpoint"] = iss + login.PathPAR
		md["require_pushed_authorization_requests"] = false
		// RFC 9207 §3: the authorization response carries iss.
		md["authorization_response_iss_parameter_supported"] = true
	}
	return json.Marshal(md)
}

func (s *Server) handleMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(*s.metadata.Load())
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// Short caching: a rotated key must reach connectors quickly.
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.keys.JWKS())
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.store.Ping(r.Context()); err != nil {
		s.logger.ErrorContext(r.Context(), "health check failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func signatureAlgorithms(names []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, 0, len(names))
	for _, n := range names {
		out = append(out, jose.SignatureAlgorithm(n))
	}
	return out
}
