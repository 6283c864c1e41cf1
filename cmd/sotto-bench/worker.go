package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// loadWorker is one virtual client with its own DPoP key. It sends one
// request at a time, so it holds at most one connection of the transport.
type loadWorker struct {
	id        int
	proofs    *proofSigner
	subjects  *subjectSigner
	proofList []string
	freshList []string // with -fresh-subjects: one subject token per proof
	latencies []time.Duration
	errors    map[string]*errorCount
	requests  int64
}

// run sends exchanges until the deadline, until another worker ran out of
// proofs, or until this one does, which it reports by returning true.
// A request in flight at the deadline completes and is counted.
func (w *loadWorker) run(cfg loadConfig, shared []string, deadline time.Time, stop *atomic.Bool) bool {
	for i, proof := range w.proofList {
		if stop.Load() || !time.Now().Before(deadline) {
			return false
		}

		var subject string
		if w.freshList != nil {
			subject = w.freshList[i]
		} else {
			subject = shared[(w.id+i*cfg.workers)%cfg.users]
		}
		body := cfg.formBase + "&subject_token=" + subject

		start := time.Now()
		kind, example := sendExchange(cfg.client, cfg.tokenEndpoint, body, proof)
		elapsed := time.Since(start)

		w.requests++
		if kind == "" {
			w.latencies = append(w.latencies, elapsed)
			continue
		}
		count := w.errors[kind]
		if count == nil {
			count = &errorCount{Example: example}
			w.errors[kind] = count
		}
		count.Count++
	}
	return time.Now().Before(deadline)
}

// sendExchange posts one token exchange. It returns an empty kind on
// success, or the kind of failure ("400 invalid_grant", "transport:
// timeout") with the server's error_description.
func sendExchange(client *http.Client, endpoint, body, proof string) (kind, example string) {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return "client: invalid request", err.Error()
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("DPoP", proof)

	resp, err := client.Do(req)
	if err != nil {
		return "transport: " + transportErrorKind(err), err.Error()
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return "transport: reading the response failed", err.Error()
	}

	if resp.StatusCode == http.StatusOK {
		if !bytes.Contains(data, []byte(`"access_token"`)) {
			return "200 without access_token", ""
		}
		return "", ""
	}

	var oauthErr struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(data, &oauthErr) != nil || oauthErr.Code == "" {
		oauthErr.Code = "(no OAuth error)"
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, oauthErr.Code), truncate(oauthErr.Description, 200)
}

func transportErrorKind(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	default:
		return "other"
	}
}
