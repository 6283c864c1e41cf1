// Command assistant plays a voice assistant against a running Sotto server,
// using only the server's public HTTP protocol.
//
// It prints each of these steps as it performs them:
//
//  1. read the server metadata (RFC 8414);
//  2. sign a corporate ID token with the demonstration IdP key;
//  3. create an ephemeral ES256 DPoP key (RFC 9449);
//  4. exchange the ID token for an action token (RFC 8693);
//  5. verify that token against the server's JWKS (RFC 9068);
//  6. introspect it as the ITSM connector (RFC 7662);
//  7. revoke it (RFC 7009);
//  8. introspect it again, expecting "active": false.
//
// It prints tokens and proofs only as a short prefix and their decoded
// claims, never whole.
//
// Start a server, then run from the repository root:
//
//	go run ./cmd/sotto serve --config examples/sotto.yaml
//	go run ./examples/assistant
//
// The flags -issuer, -scope, -audience, -sub, -groups and -idp-key change
// what it asks for. With -connector http://127.0.0.1:8090 it also creates
// a ticket at the example ITSM connector after step 5. It talks only to loopback addresses unless
// -allow-remote is given, and exits with status 1 on the first failure.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// options are the command-line settings.
type options struct {
	issuer          string
	scope           string
	audience        string
	subject         string
	groups          []string
	idpKeyPath      string
	clientID        string
	connectorID     string
	connectorSecret string
	connector       string
	allowRemote     bool
	timeout         time.Duration
	// session makes the assistant start a session first and exchange the
	// session access token instead of the ID token.
	session bool
}

func main() {
	opts := parseFlags()
	if err := run(opts); err != nil {
		fmt.Fprintf(os.Stderr, "\nassistant: %v\n", err)
		if errors.Is(err, errUnreachable) {
			fmt.Fprintln(os.Stderr,
				"start it with `go run ./cmd/sotto serve --config examples/sotto.yaml`")
		}
		os.Exit(1)
	}
}

func parseFlags() options {
	var opts options
	var groups string
	flag.StringVar(&opts.issuer, "issuer", "http://127.0.0.1:8080", "issuer URL of the Sotto server")
	flag.StringVar(&opts.scope, "scope", "ticket:create", "catalog action to request as scope")
	flag.StringVar(&opts.audience, "audience", "https://itsm.corp.example", "connector to request as audience")
	flag.StringVar(&opts.subject, "sub", "alice", "user (sub) of the corporate ID token")
	flag.StringVar(&groups, "groups", "employees", "comma-separated groups of the corporate ID token")
	flag.StringVar(&opts.idpKeyPath, "idp-key", "examples/idp-dev-key.jwk.json",
		"private JWK of the demonstration IdP (a development key)")
	flag.StringVar(&opts.clientID, "client-id", "voice-assistant", "public client ID of the assistant")
	flag.StringVar(&opts.connectorID, "connector-id", "itsm-connector", "client ID of the introspecting connector")
	flag.StringVar(&opts.connectorSecret, "connector-secret", "itsm-connector-dev-secret",
		"client secret of the introspecting connector (the development secret by default)")
	flag.StringVar(&opts.connector, "connector", "",
		"base URL of the example ITSM connector; when set, the action token creates a ticket there")
	flag.BoolVar(&opts.allowRemote, "allow-remote", false, "permit an issuer that is not a loopback address")
	flag.BoolVar(&opts.session, "session", false,
		"start a session (scope sotto:session), refresh it, and exchange the session access token for the action token")
	flag.DurationVar(&opts.timeout, "timeout", 10*time.Second, "timeout of each HTTP request")
	flag.Parse()

	for _, group := range strings.Split(groups, ",") {
		if group = strings.TrimSpace(group); group != "" {
			opts.groups = append(opts.groups, group)
		}
	}
	return opts
}

// run performs every step in order and stops at the first failure.
func run(opts options) error {
	opts.issuer = strings.TrimSuffix(opts.issuer, "/")
	if !opts.allowRemote {
		if err := checkLoopback(opts.issuer); err != nil {
			return err
		}
	}

	ctx := context.Background()
	c := &client{
		http: &http.Client{
			Timeout: opts.timeout,
			// Follow no redirect, so every request goes where checkTarget allowed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		issuer:      opts.issuer,
		allowRemote: opts.allowRemote,
	}

	if err := stepMetadata(ctx, c); err != nil {
		return err
	}
	idToken, err := stepIDToken(opts)
	if err != nil {
		return err
	}
	key, err := stepDPoPKey()
	if err != nil {
		return err
	}
	subjectToken, subjectType := idToken, idTokenType
	var refreshToken string
	if opts.session {
		if subjectToken, refreshToken, err = stepSession(ctx, c, opts, idToken, key); err != nil {
			return err
		}
		subjectType = accessTokenType
	}
	token, err := stepExchange(ctx, c, opts, subjectToken, subjectType, key)
	if err != nil {
		return err
	}
	if err := stepVerify(ctx, c, opts, token, key); err != nil {
		return err
	}
	if opts.connector != "" {
		if err := stepConnector(ctx, c, opts, token, key); err != nil {
			return err
		}
	}
	if err := stepIntrospect(ctx, c, opts, token, 6, "Introspect the action token", true); err != nil {
		return err
	}
	revoked := token
	if opts.session {
		// Revoking the refresh token ends the session and every action
		// token exchanged from it.
		revoked = refreshToken
	}
	if err := stepRevoke(ctx, c, opts, revoked); err != nil {
		return err
	}
	if err := stepIntrospect(ctx, c, opts, token, 8, "Introspect the revoked action token", false); err != nil {
		return err
	}

	fmt.Println("\nDone: the action token was issued, verified, introspected and revoked.")
	return nil
}

func stepMetadata(ctx context.Context, c *client) error {
	step(1, "Read the server metadata (RFC 8414)")
	if err := c.fetchMetadata(ctx); err != nil {
		return fmt.Errorf("read metadata: %w", err)
	}

	detail("issuer", c.meta.Issuer)
	detail("token endpoint", c.meta.TokenEndpoint)
	detail("JWKS", c.meta.JWKSURI)
	detail("introspection endpoint", c.meta.IntrospectionEndpoint)
	detail("revocation endpoint", c.meta.RevocationEndpoint)
	detail("DPoP algorithms", strings.Join(c.meta.DPoPAlgorithms, ", "))
	if len(c.meta.DPoPAlgorithms) > 0 && !slices.Contains(c.meta.DPoPAlgorithms, "ES256") {
		return errors.New("the server does not accept ES256 DPoP proofs")
	}
	return nil
}

func stepIDToken(opts options) (string, error) {
	step(2, "Sign a corporate ID token as the demonstration IdP")
	key, err := loadIdPKey(opts.idpKeyPath)
	if err != nil {
		return "", err
	}
	fmt.Printf("   WARNING: %s is a DEVELOPMENT key, published on purpose.\n", opts.idpKeyPath)
	fmt.Println("   A real assistant gets this token from the corporate SSO login instead.")

	token, err := signIDToken(key, opts.subject, opts.groups, time.Now())
	if err != nil {
		return "", err
	}
	detail("kid", key.KeyID)
	detail("ID token", prefix(token))
	return token, printClaims(token)
}

func stepDPoPKey() (*dpopKey, error) {
	step(3, "Create an ephemeral ES256 DPoP key (RFC 9449)")
	key, err := newDPoPKey()
	if err != nil {
		return nil, err
	}
	detail("JWK thumbprint (RFC 7638)", key.thumbprint)
	return key, nil
}

func stepExchange(ctx context.Context, c *client, opts options, subjectToken, subjectType string, key *dpopKey) (string, error) {
	title := "Exchange the ID token for an action token (RFC 8693) with a fresh DPoP proof"
	if subjectType == accessTokenType {
		title = "Exchange the session access token for an action token (RFC 8693) with a fresh DPoP proof"
	}
	step(4, title)
	form := url.Values{
		"grant_type":         {tokenExchangeGrant},
		"client_id":          {opts.clientID},
		"subject_token":      {subjectToken},
		"subject_token_type": {subjectType},
		"scope":              {opts.scope},
		"audience":           {opts.audience},
	}
	token, status, err := c.exchange(ctx, key, form)
	if err != nil {
		return "", fmt.Errorf("token exchange: %w", err)
	}

	detail("HTTP status", fmt.Sprint(status))
	detail("issued_token_type", token.IssuedTokenType)
	detail("token_type", token.TokenType)
	detail("expires_in", fmt.Sprintf("%d s", token.ExpiresIn))
	detail("scope", token.Scope)
	detail("access_token", prefix(token.AccessToken))

	switch {
	case token.AccessToken == "":
		return "", errors.New("token exchange: the response has no access_token")
	case !strings.EqualFold(token.TokenType, "DPoP"):
		return "", fmt.Errorf("token exchange: token_type is %q, expected DPoP", token.TokenType)
	case token.IssuedTokenType != accessTokenType:
		return "", fmt.Errorf("token exchange: issued_token_type is %q, expected %s",
			token.IssuedTokenType, accessTokenType)
	}
	return token.AccessToken, nil
}

func stepVerify(ctx context.Context, c *client, opts options, token string, key *dpopKey) error {
	step(5, "Verify the action token against the server's JWKS (RFC 9068)")
	claims, all, err := c.verifyActionToken(ctx, token, opts.audience, key.thumbprint)
	if err != nil {
		return err
	}
	if claims.Scope != opts.scope {
		return fmt.Errorf("action token scope is %q, expected %q", claims.Scope, opts.scope)
	}

	fmt.Println("   The signature, typ at+jwt, iss, aud, exp, scope and cnf.jkt are valid. Claims:")
	return printJSON(all)
}

func stepIntrospect(ctx context.Context, c *client, opts options, token string,
	number int, title string, wantActive bool) error {
	step(number, title+" as "+opts.connectorID+" (RFC 7662)")
	result, err := c.introspect(ctx, token, opts.connectorID, opts.connectorSecret)
	if err != nil {
		return fmt.Errorf("introspection: %w", err)
	}
	if err := printJSON(result); err != nil {
		return err
	}

	if active := result["active"].(bool); active != wantActive {
		return fmt.Errorf("introspection returned active=%t, expected %t; a connector sees only tokens "+
			"for the audiences in its clients.yaml entry, so check that -audience is one of %s's",
			active, wantActive, opts.connectorID)
	}
	return nil
}

func stepRevoke(ctx context.Context, c *client, opts options, token string) error {
	title := "Revoke the action token (RFC 7009)"
	if opts.session {
		title = "Revoke the session with its refresh token (RFC 7009)"
	}
	step(7, title)
	status, err := c.revoke(ctx, token, opts.clientID)
	if err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	detail("HTTP status", fmt.Sprint(status))
	return nil
}

func step(number int, title string) {
	fmt.Printf("\n%d. %s\n", number, title)
}

func detail(name, value string) {
	fmt.Printf("   %-26s %s\n", name+":", value)
}

// prefix shortens a token or proof for printing, so that no whole
// credential reaches the terminal or a log.
func prefix(token string) string {
	const keep = 16
	if len(token) <= keep {
		return "(" + fmt.Sprint(len(token)) + " bytes)"
	}
	return fmt.Sprintf("%s... (%d bytes)", token[:keep], len(token))
}

// printClaims prints the decoded claims of a JWT that this program signed
// itself, so their signature needs no check here.
func printClaims(token string) error {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return err
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return err
	}
	return printJSON(claims)
}

func printJSON(value any) error {
	data, err := json.MarshalIndent(value, "   ", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("   %s\n", data)
	return nil
}
