package authz_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/stepup"
)

// chromiumPath is Debian's chromium package.
const chromiumPath = "/usr/bin/chromium"

// TestPasskeyBrowser registers a passkey and approves a passkey step-up
// in headless Chromium with a CDP virtual authenticator (ctap2, internal
// transport, resident keys, user verification), driven by
// interop/passkeys/run.mjs. The issuer is http://localhost:<port>, which
// Chromium treats as a secure context and whose host is a valid RP ID;
// 127.0.0.1 is a secure context too but not a valid RP ID.
func TestPasskeyBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js 20 or newer to run the passkey browser test")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skip("chromium is not installed at " + chromiumPath + "; install it with apt-get install -y chromium to run the passkey browser test")
	}
	dir := filepath.Join("..", "interop", "passkeys")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Skip("playwright-core is not installed; run `npm ci --prefix interop/passkeys` first")
	}

	ts := newPasskeyServer(t)
	dev := newDevice(t)
	alice := ts.managerToken("alice")
	form := ts.expenseForm(alice)
	first := ts.exchange(dev, form)
	obj := stepUpObject(t, first)
	id, _ := obj["challenge_id"].(string)
	passkeyURL, _ := obj["passkey_url"].(string)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"SOTTO_PASSKEY_URL="+passkeyURL,
		"SOTTO_REGISTRATIONS_URL="+ts.issuer+stepup.PathPasskeyRegistrations,
		"SOTTO_PASSKEYS_URL="+ts.issuer+stepup.PathPasskeys,
		"SOTTO_ID_TOKEN="+alice,
		"SOTTO_CHROMIUM="+chromiumPath,
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var result struct {
		Registered    bool     `json:"registered"`
		Approved      bool     `json:"approved"`
		Status        string   `json:"status"`
		Text          string   `json:"text"`
		Error         string   `json:"error"`
		ConsoleErrors []string `json:"consoleErrors"`
		Registration  any      `json:"registration"`
	}
	if jerr := json.Unmarshal(out, &result); jerr != nil {
		t.Fatalf("run.mjs: %v; output %q; stderr %s", err, out, stderr.String())
	}
	if err != nil || !result.Approved {
		t.Fatalf("run.mjs: %v: registered %v, approved %v, status %q, error %q, registration %v, console errors %v; stderr %s",
			err, result.Registered, result.Approved, result.Status, result.Error, result.Registration, result.ConsoleErrors, stderr.String())
	}
	// A Content-Security-Policy violation is reported on the console.
	if len(result.ConsoleErrors) > 0 {
		t.Errorf("the page logged errors: %v", result.ConsoleErrors)
	}
	for _, want := range []string{"Approve an expense report", "https://erp.corp.example", "voice-assistant"} {
		if !strings.Contains(result.Text, want) {
			t.Errorf("page text %q does not mention %q", result.Text, want)
		}
	}

	issued := ts.retry(dev, form, id)
	if issued.status != 200 {
		t.Fatalf("retry after the browser approval: status %d, body %v", issued.status, issued.body)
	}
	claims := verifyActionToken(t, ts.jwks(), issued.str("access_token"))
	if claims["acr"] != "urn:sotto:acr:passkey" {
		t.Errorf("acr = %v, want urn:sotto:acr:passkey", claims["acr"])
	}
	if amr, _ := claims["amr"].([]any); !slices.Contains(amr, any("user")) || !slices.Contains(amr, any("mfa")) {
		t.Errorf("amr = %v, want user and mfa", claims["amr"])
	}
	list, _ := ts.store.Passkeys(context.Background(), "sso.corp.example|alice")
	if len(list) != 1 || !list[0].UserVerified {
		t.Fatalf("stored passkeys = %v, want one registered with user verification", list)
	}
	assertRecord(t, ts, audit.DecisionEnrolled, "passkey_registered", list[0].ID)
	assertRecord(t, ts, audit.DecisionApproved, "passkey_approved", list[0].ID)
}
