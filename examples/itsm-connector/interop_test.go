package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOAuth4WebAPIInterop runs an unmodified oauth4webapi client against
// a real Sotto server and this connector with DPoP nonces required: a
// token exchange through the library's generic grant request, then
// POST /tickets with protectedResourceRequest.
func TestOAuth4WebAPIInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js 20 or newer to run the oauth4webapi interop test")
	}
	dir := filepath.Join("..", "..", "interop", "oauth4webapi")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oauth4webapi")); err != nil {
		t.Skip("oauth4webapi is not installed; run `npm ci --prefix interop/oauth4webapi` first")
	}
	idpKey, err := filepath.Abs(filepath.Join("..", "idp-dev-key.jwk.json"))
	if err != nil {
		t.Fatal(err)
	}

	issuer := startSotto(t)
	connectorURL := startConnector(t, issuer, time.Now, true)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs", issuer, connectorURL, idpKey)
	cmd.Dir = dir
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node run.mjs failed: %v\n%s", err, output)
	}
	for _, want := range []string{
		"token exchange: token_type dpop",
		"connector: status 201, nonce challenges 1",
		"interop ok",
	} {
		if !strings.Contains(string(output), want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
}
