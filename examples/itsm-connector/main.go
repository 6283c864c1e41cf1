// Command itsm-connector is a small ticket API that accepts only Sotto
// action tokens, checked with the connector package.
//
//	POST /tickets  requires scope ticket:create and returns 201 with the ticket
//	GET  /tickets  requires scope ticket:read and lists the caller's tickets
//
// Start a Sotto server, then run from the repository root:
//
//	go run ./examples/itsm-connector
//	go run ./examples/assistant -connector http://127.0.0.1:8090
//
// -audience is the connector's identifier in the scope catalog and
// -public-url is the URL clients reach it at, which DPoP proofs name as
// htu. With -introspect, POST /tickets also asks the issuer whether the
// token was revoked, authenticating with -client-id and the secret from
// the ITSM_CLIENT_SECRET environment variable or -client-secret. With
// -nonces, every DPoP proof must carry a nonce the connector issued.
// Tickets live in memory only.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sotto-auth/sotto/connector"
)

type options struct {
	issuer       string
	listen       string
	publicURL    string
	audience     string
	introspect   bool
	clientID     string
	clientSecret string
	nonces       bool

	// now is the validator's clock, or nil for time.Now. Tests set it.
	now func() time.Time
}

func main() {
	var opts options
	flag.StringVar(&opts.issuer, "issuer", "http://127.0.0.1:8080", "issuer identifier of the Sotto server")
	flag.StringVar(&opts.listen, "listen", "127.0.0.1:8090", "address to listen on")
	flag.StringVar(&opts.publicURL, "public-url", "", "URL clients reach the connector at, for the DPoP htu check (default http:// and the listen address)")
	flag.StringVar(&opts.audience, "audience", "https://itsm.corp.example", "this connector's audience in the scope catalog")
	flag.BoolVar(&opts.introspect, "introspect", false, "also introspect tokens at the issuer on POST /tickets (RFC 7662)")
	flag.StringVar(&opts.clientID, "client-id", "itsm-connector", "client ID for introspection")
	flag.StringVar(&opts.clientSecret, "client-secret", "itsm-connector-dev-secret",
		"client secret for introspection (the development secret by default; ITSM_CLIENT_SECRET overrides it)")
	flag.BoolVar(&opts.nonces, "nonces", false, "require DPoP nonces issued by the connector (RFC 9449, Section 9)")
	flag.Parse()
	if secret := os.Getenv("ITSM_CLIENT_SECRET"); secret != "" {
		opts.clientSecret = secret
	}
	if opts.publicURL == "" {
		opts.publicURL = "http://" + opts.listen
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(opts, logger); err != nil {
		logger.Error("itsm-connector stopped", "error", err)
		os.Exit(1)
	}
}

func run(opts options, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	validator, err := newValidator(ctx, opts, logger)
	if err != nil {
		return err
	}
	server := newServer(opts.listen, newHandler(validator, opts.introspect, logger))

	errs := make(chan error, 1)
	go func() { errs <- server.ListenAndServe() }()
	logger.Info("itsm-connector started", "listen", opts.listen, "public_url", opts.publicURL,
		"audience", opts.audience, "issuer", opts.issuer, "introspect", opts.introspect, "nonces", opts.nonces)

	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdown); err != nil {
		return err
	}
	logger.Info("itsm-connector stopped")
	return nil
}

// newValidator builds the connector's validator from opts.
func newValidator(ctx context.Context, opts options, logger *slog.Logger) (*connector.Validator, error) {
	cfg := connector.Config{
		Issuer:    opts.issuer,
		Audience:  opts.audience,
		PublicURL: opts.publicURL,
		Logger:    logger,
		Now:       opts.now,
	}
	if opts.introspect {
		cfg.Introspection = &connector.IntrospectionConfig{ClientID: opts.clientID, ClientSecret: opts.clientSecret}
	}
	if opts.nonces {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		nonces, err := connector.NewHMACNonces(key, time.Minute)
		if err != nil {
			return nil, err
		}
		cfg.Nonces = nonces
	}
	validator, err := connector.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start the validator (is the Sotto server at %s running?): %w", opts.issuer, err)
	}
	return validator, nil
}

// newServer returns an HTTP server with timeouts and a body limit.
func newServer(addr string, handler http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           http.MaxBytesHandler(handler, maxBodyBytes),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

var errTooManyTickets = errors.New("the ticket store is full")
