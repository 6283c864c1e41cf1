package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testMain = `issuer: https://sotto.corp.example
trusted_issuers:
  - issuer: https://sso.corp.example
    jwks_file: idp.jwks.json
    audience: sotto
clients_file: clients.yaml
catalog_file: catalog.yaml
`
	testClients = `clients:
  - client_id: voice-assistant
    public: true
    require_dpop: true
`
	testCatalog = `actions:
  - scope: ticket:create
    description: Create an IT ticket
    audiences: [https://itsm.corp.example]
    max_ttl: 5m
`
	testJWKS = `{"keys": []}`
)

// writeSetup writes a valid configuration into a temporary folder, with
// files replaced or added by overrides, and returns the config file path.
func writeSetup(t *testing.T, overrides map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"sotto.yaml":    testMain,
		"clients.yaml":  testClients,
		"catalog.yaml":  testCatalog,
		"idp.jwks.json": testJWKS,
	}
	for name, content := range overrides {
		files[name] = content
	}
	for name, content := range files {
		if content == "" {
			continue // an empty override removes the file
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "sotto.yaml")
}

// mustLoad loads the config at path and fails the test on an error.
func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) error:\n%v", path, err)
	}
	return c
}

// loadProblems loads the config at path and returns its problems, failing
// the test when Load succeeds or fails with another error type.
func loadProblems(t *testing.T, path string) []Problem {
	t.Helper()
	_, err := Load(path)
	return problemsOf(t, err)
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a *ValidationError")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got error %T %q, want a *ValidationError", err, err)
	}
	return ve.Problems
}

// findProblem returns the problem at key, if any.
func findProblem(ps []Problem, key string) (Problem, bool) {
	for _, p := range ps {
		if p.Key == key {
			return p, true
		}
	}
	return Problem{}, false
}

func listProblems(ps []Problem) string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
