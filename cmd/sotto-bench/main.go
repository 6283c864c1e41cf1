// Command sotto-bench measures how many RFC 8693 token exchanges a second a
// Sotto server completes, and compares that with the crypto floor of the
// machine it runs on. It speaks only the server's public HTTP protocol.
//
// Run a server, then from the repository root:
//
//	go run ./cmd/sotto-bench -issuer http://127.0.0.1:8080 -c 16 -d 10s
//	go run ./cmd/sotto-bench -floor-only
//
// The crypto floor runs first, while the server is idle. For
// -floor-duration, GOMAXPROCS goroutines repeat the signature work that no
// exchange can skip, with no server and no I/O. That work is to verify an
// ES256 subject ID token, verify a DPoP proof with its embedded jwk and
// compute its RFC 7638 thumbprint, and sign an ES256 access token.
//
// The load part then has -c workers send exchanges for -d. Each worker has
// its own DPoP key, and the transport keeps one keep-alive connection per
// worker. It reports exchanges a second, latency percentiles of the
// successful exchanges, and every failed request by HTTP status and OAuth
// error code. Any status other than 200 counts as an error. The last line
// divides exchanges a second by the floor.
//
// The client signs before it measures, so that it takes no CPU from a
// server on the same machine. Proofs are signed in batches of at most 20 s
// of load, each just before its batch starts, because the server accepts
// a proof only while its iat is within 60 s. The first batch is sized from
// -rate (by default twice the floor), later ones from the rate measured in
// the batch before. If a batch runs out of proofs it ends early, and the
// report shows it. -max-proofs caps the proofs of one batch and so the
// memory they take.
//
// Each of -users virtual users has one subject ID token that it reuses for
// all its exchanges, as an assistant reuses its user's SSO token. The
// server caches verified subject tokens, so this measures the cached path.
// -fresh-subjects signs a new subject token for every request (ahead of
// time, like the proofs) and so measures the uncached cost.
//
// The tool loads only loopback targets unless -allow-remote is given, and
// every loop stops by itself: -d is at most 10 minutes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"
)

// Bounds of the flags, so that every run is limited in time and memory.
const (
	maxWorkers       = 1024
	maxUsers         = 100_000
	maxDuration      = 10 * time.Minute
	maxFloorDuration = time.Minute
	maxProofsLimit   = 2_000_000
)

// options are the command-line settings.
type options struct {
	issuer        string
	workers       int
	users         int
	duration      time.Duration
	freshSubjects bool
	scope         string
	audience      string
	clientID      string
	subjectPrefix string
	groups        []string
	idpKeyPath    string
	rate          float64
	maxProofs     int
	timeout       time.Duration
	floorDuration time.Duration
	floorOnly     bool
	skipFloor     bool
	jsonOutput    bool
	allowRemote   bool
}

func main() {
	opts, err := parseFlags()
	if err == nil {
		err = run(opts)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sotto-bench: %v\n", err)
		if errors.Is(err, errUnreachable) {
			fmt.Fprintln(os.Stderr, "start the server with `go run ./cmd/sotto serve --config examples/sotto.yaml`,"+
				" or run with -floor-only")
		}
		os.Exit(1)
	}
}

func parseFlags() (options, error) {
	var opts options
	var groups string
	flag.StringVar(&opts.issuer, "issuer", "http://127.0.0.1:8080", "issuer URL of the Sotto server")
	flag.IntVar(&opts.workers, "c", 16, "number of concurrent workers (each with its own DPoP key)")
	flag.IntVar(&opts.users, "users", 0, "number of virtual users, each with one subject token (0: same as -c)")
	flag.DurationVar(&opts.duration, "d", 10*time.Second, "duration of the timed load, at most 10m")
	flag.BoolVar(&opts.freshSubjects, "fresh-subjects", false,
		"sign a new subject token for every request, to measure the server without its subject token cache")
	flag.StringVar(&opts.scope, "scope", "ticket:create", "catalog action to request as scope")
	flag.StringVar(&opts.audience, "audience", "https://itsm.corp.example", "connector to request as audience")
	flag.StringVar(&opts.clientID, "client-id", "voice-assistant", "public client ID of the assistant")
	flag.StringVar(&opts.subjectPrefix, "sub-prefix", "bench-user-", "prefix of the virtual users' sub claims")
	flag.StringVar(&groups, "groups", "employees", "comma-separated groups of the subject tokens")
	flag.StringVar(&opts.idpKeyPath, "idp-key", "examples/idp-dev-key.jwk.json",
		"private JWK of the demonstration IdP (a development key)")
	flag.Float64Var(&opts.rate, "rate", 0,
		"expected exchanges a second, to size the first batch of proofs (0: twice the floor, or 8000)")
	flag.IntVar(&opts.maxProofs, "max-proofs", 300_000, "maximum number of proofs signed for one batch")
	flag.DurationVar(&opts.timeout, "timeout", 10*time.Second, "timeout of each HTTP request")
	flag.DurationVar(&opts.floorDuration, "floor-duration", 3*time.Second, "duration of the crypto floor")
	flag.BoolVar(&opts.floorOnly, "floor-only", false, "measure only the crypto floor (no server needed)")
	flag.BoolVar(&opts.skipFloor, "skip-floor", false, "skip the crypto floor")
	flag.BoolVar(&opts.jsonOutput, "json", false, "print the results as one JSON object on standard output")
	flag.BoolVar(&opts.allowRemote, "allow-remote", false, "permit a target that is not a loopback address")
	flag.Parse()

	for _, group := range strings.Split(groups, ",") {
		if group = strings.TrimSpace(group); group != "" {
			opts.groups = append(opts.groups, group)
		}
	}
	if opts.users == 0 {
		opts.users = opts.workers
	}
	opts.issuer = strings.TrimSuffix(opts.issuer, "/")
	return opts, opts.validate()
}

// validate reports every invalid flag at once.
func (o options) validate() error {
	var problems []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			problems = append(problems, fmt.Errorf(format, args...))
		}
	}

	check(o.workers >= 1 && o.workers <= maxWorkers, "-c must be between 1 and %d, got %d", maxWorkers, o.workers)
	if o.workers >= 1 {
		check(o.users >= 1 && o.users <= maxUsers, "-users must be between 1 and %d, got %d", maxUsers, o.users)
	}
	check(o.duration >= time.Second && o.duration <= maxDuration,
		"-d must be between 1s and %v, got %v", maxDuration, o.duration)
	check(o.floorDuration >= 100*time.Millisecond && o.floorDuration <= maxFloorDuration,
		"-floor-duration must be between 100ms and %v, got %v", maxFloorDuration, o.floorDuration)
	check(o.maxProofs >= o.workers && o.maxProofs <= maxProofsLimit,
		"-max-proofs must be between -c and %d, got %d", maxProofsLimit, o.maxProofs)
	check(o.rate >= 0, "-rate must not be negative, got %v", o.rate)
	check(o.timeout > 0, "-timeout must be positive, got %v", o.timeout)
	check(!(o.floorOnly && o.skipFloor), "-floor-only and -skip-floor exclude each other")
	if !o.floorOnly && !o.allowRemote {
		if err := checkLoopback(o.issuer); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

func run(opts options) error {
	log := io.Writer(os.Stdout)
	if opts.jsonOutput {
		log = os.Stderr
	}
	result := newReport()

	var cfg *loadConfig
	if !opts.floorOnly {
		var err error
		if cfg, err = prepareLoad(opts, log); err != nil {
			return err
		}
		result.Issuer, result.Concurrency, result.Users = opts.issuer, opts.workers, opts.users
		result.FreshSubjects = opts.freshSubjects
	}

	if !opts.skipFloor {
		workers := runtime.GOMAXPROCS(0)
		fmt.Fprintf(log, "Measuring the crypto floor for %v on %d workers...\n", opts.floorDuration, workers)
		floor, err := measureFloor(opts.floorDuration, workers)
		if err != nil {
			return err
		}
		result.Floor = floor
	}

	if cfg != nil {
		cfg.rate = opts.rate
		if cfg.rate == 0 {
			cfg.rate = 8000
			if result.Floor != nil {
				cfg.rate = 2 * result.Floor.PerSecond
			}
		}
		fmt.Fprintf(log, "Sending exchanges for %v with %d workers...\n", opts.duration, opts.workers)
		load, err := runLoad(*cfg)
		if err != nil {
			return err
		}
		result.setLoad(load)
	}

	if opts.jsonOutput {
		return result.writeJSON(os.Stdout)
	}
	result.writeText(os.Stdout)
	return nil
}

// prepareLoad reads the metadata, prepares the signers and sends one
// exchange to check that the server accepts what the load will send.
func prepareLoad(opts options, log io.Writer) (*loadConfig, error) {
	client := &http.Client{
		Transport: newTransport(opts.workers),
		Timeout:   opts.timeout,
		// Follow no redirect, so no request leaves the checked target.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()

	meta, err := fetchMetadata(ctx, client, opts.issuer, opts.allowRemote)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "Token endpoint: %s\n", meta.TokenEndpoint)

	idpKey, err := loadIdPKey(opts.idpKeyPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "Signing subject tokens with the development IdP key %s (kid %s)\n",
		opts.idpKeyPath, idpKey.KeyID)
	subjects, err := newSubjectSigner(idpKey, opts.groups)
	if err != nil {
		return nil, err
	}

	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"client_id":          {opts.clientID},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
		"scope":              {opts.scope},
		"audience":           {opts.audience},
	}
	cfg := &loadConfig{
		client:        client,
		tokenEndpoint: meta.TokenEndpoint,
		formBase:      form.Encode(),
		workers:       opts.workers,
		users:         opts.users,
		subjectPrefix: opts.subjectPrefix,
		freshSubjects: opts.freshSubjects,
		subjects:      subjects,
		duration:      opts.duration,
		maxProofs:     opts.maxProofs,
		log:           log,
	}
	return cfg, preflight(cfg)
}

// preflight sends one exchange and fails when the server rejects it, so a
// misconfigured run stops before it sends thousands of failing requests.
func preflight(cfg *loadConfig) error {
	proofs, err := newProofSigner()
	if err != nil {
		return err
	}
	now := time.Now()
	proof, err := proofs.sign(cfg.tokenEndpoint, now)
	if err != nil {
		return err
	}
	subject, err := cfg.subjects.sign(userName(cfg.subjectPrefix, 0), now)
	if err != nil {
		return err
	}

	kind, description := sendExchange(cfg.client, cfg.tokenEndpoint, cfg.formBase+"&subject_token="+subject, proof)
	if kind != "" {
		return fmt.Errorf("the server rejected a test exchange: %s: %s", kind, description)
	}
	return nil
}
