package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestPercentileNearestRank(t *testing.T) {
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{0.50, 50 * time.Millisecond},
		{0.90, 90 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{1, 100 * time.Millisecond},
	}
	for _, test := range tests {
		if got := percentile(sorted, test.p); got != test.want {
			t.Errorf("percentile(%v) = %v, want %v", test.p, got, test.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of no samples = %v, want 0", got)
	}
}

func TestProofsPerWorker(t *testing.T) {
	tests := []struct {
		name      string
		rate      float64
		length    time.Duration
		workers   int
		maxProofs int
		want      int
	}{
		{"rate times length with headroom", 1000, 10 * time.Second, 10, 1_000_000, 1300},
		{"capped by max proofs", 10_000, 20 * time.Second, 16, 160_000, 10_000},
		{"at least one proof", 0, time.Second, 4, 100, 1},
	}
	for _, test := range tests {
		got := proofsPerWorker(test.rate, test.length, test.workers, test.maxProofs)
		if got != test.want {
			t.Errorf("%s: proofsPerWorker = %d, want %d", test.name, got, test.want)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url    string
		wantOK bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://localhost:18080", true},
		{"http://[::1]:8080", true},
		{"http://192.168.1.10:8080", false},
		{"https://sotto.corp.example", false},
		{"http://localhost.example.com", false},
		{"unix:///tmp/sotto.sock", false},
	}
	for _, test := range tests {
		err := checkLoopback(test.url)
		if gotOK := err == nil; gotOK != test.wantOK {
			t.Errorf("checkLoopback(%q) = %v, want ok=%t", test.url, err, test.wantOK)
		}
	}
}

func TestSignedProofVerifies(t *testing.T) {
	const htu = "http://127.0.0.1:8080/oauth2/token"
	signer, err := newProofSigner()
	if err != nil {
		t.Fatal(err)
	}
	proof, err := signer.sign(htu, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	sum, err := verifyProof(proof, htu)
	if err != nil {
		t.Fatalf("verifyProof: %v", err)
	}
	if got := base64.RawURLEncoding.EncodeToString(sum); got != signer.thumbprint {
		t.Errorf("thumbprint = %q, want %q", got, signer.thumbprint)
	}
	if _, err := verifyProof(proof, "http://127.0.0.1:8080/other"); err == nil {
		t.Error("verifyProof accepted a proof for another htu")
	}
}

func TestProofsHaveUniqueJTI(t *testing.T) {
	signer, err := newProofSigner()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 100 {
		proof, err := signer.sign("http://127.0.0.1/token", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		payload := jws.UnsafePayloadWithoutVerification()
		if seen[string(payload)] {
			t.Fatalf("two proofs with the same claims %s", payload)
		}
		seen[string(payload)] = true
	}
}

func TestFloorMeasures(t *testing.T) {
	floor, err := measureFloor(200*time.Millisecond, 1)
	if err != nil {
		t.Fatal(err)
	}
	if floor.Exchanges == 0 {
		t.Error("floor completed no exchange")
	}
	if floor.SubjectVerifyUS <= 0 || floor.ProofVerifyUS <= 0 || floor.TokenSignUS <= 0 {
		t.Errorf("floor parts = %v, %v, %v µs, want all positive",
			floor.SubjectVerifyUS, floor.ProofVerifyUS, floor.TokenSignUS)
	}
}

// TestRunLoadCountsErrors runs the load against a stub token endpoint that
// rejects every third request, and checks the counts and that every proof
// was sent once.
func TestRunLoadCountsErrors(t *testing.T) {
	var requests, replays atomic.Int64
	seen := make(chan string, 1<<16)
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), "subject_token=") || r.Header.Get("DPoP") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		select {
		case seen <- r.Header.Get("DPoP"):
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		if requests.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant","error_description":"test rejection"}`)
			return
		}
		io.WriteString(w, `{"access_token":"x","token_type":"DPoP"}`)
	}))
	defer stub.Close()

	idpKey, err := generateIdPKey()
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := newSubjectSigner(idpKey, []string{"employees"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig{
		client:        &http.Client{Transport: newTransport(2), Timeout: 5 * time.Second},
		tokenEndpoint: stub.URL + "/token",
		formBase:      "grant_type=x",
		workers:       2,
		users:         3,
		subjectPrefix: "user-",
		subjects:      subjects,
		duration:      time.Second,
		rate:          200,
		maxProofs:     10_000,
		log:           io.Discard,
	}

	result, err := runLoad(cfg)
	if err != nil {
		t.Fatal(err)
	}
	close(seen)
	proofs := map[string]bool{}
	for proof := range seen {
		if proofs[proof] {
			replays.Add(1)
		}
		proofs[proof] = true
	}

	if result.requests != requests.Load() {
		t.Errorf("requests = %d, stub counted %d", result.requests, requests.Load())
	}
	wantErrors := result.requests / 3
	if got := result.errors["400 invalid_grant"]; got == nil || got.Count != wantErrors {
		t.Errorf("400 invalid_grant errors = %v, want %d", got, wantErrors)
	}
	if result.exchanges != result.requests-wantErrors {
		t.Errorf("exchanges = %d, want %d", result.exchanges, result.requests-wantErrors)
	}
	if int64(len(result.latencies)) != result.exchanges {
		t.Errorf("latency samples = %d, want %d", len(result.latencies), result.exchanges)
	}
	if replays.Load() != 0 {
		t.Errorf("%d proofs were sent twice", replays.Load())
	}
}
