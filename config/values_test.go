package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const testSecret = "hunter2-super-secret"

func TestSecretIsRedacted(t *testing.T) {
	s := Secret(testSecret)
	jsonText, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":   s.String(),
		"%v":       fmt.Sprintf("%v", s),
		"%#v":      fmt.Sprintf("%#v", s),
		"%+v":      fmt.Sprintf("%+v", struct{ S Secret }{s}),
		"LogValue": s.LogValue().String(),
		"JSON":     string(jsonText),
	}
	for name, got := range outputs {
		if strings.Contains(got, testSecret) {
			t.Errorf("%s output %q contains the secret", name, got)
		}
		if !strings.Contains(got, redacted) {
			t.Errorf("%s output %q, want %q", name, got, redacted)
		}
	}
}

func TestSecretEmptyIsEmpty(t *testing.T) {
	if got := Secret("").String(); got != "" {
		t.Errorf("String() = %q, want empty", got)
	}
}

func TestConfigHidesSecrets(t *testing.T) {
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	t.Setenv("SOTTO_KEYS_ENCRYPTION_KEY", key)
	t.Setenv("SOTTO_STORAGE_DRIVER", "postgres")
	t.Setenv("SOTTO_STORAGE_DSN", "postgres://sotto:pa55word@db.internal/sotto")
	c := mustLoad(t, writeSetup(t, map[string]string{
		"clients.yaml": testClients + "  - client_id: connector\n    client_secret: " + testSecret + "\n",
	}))

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config loaded",
		"config", c, "config_value", *c, "client", c.Clients[1], "keys", c.Keys)
	outputs := map[string]string{
		"slog JSON":  logged.String(),
		"String":     c.String(),
		"%v pointer": fmt.Sprintf("%v", c),
		"%+v value":  fmt.Sprintf("%+v", *c),
		"%#v value":  fmt.Sprintf("%#v", *c),
		"Warnings":   strings.Join(c.Warnings, "\n"),
	}
	for name, got := range outputs {
		if strings.Contains(got, testSecret) {
			t.Errorf("%s contains the client secret:\n%s", name, got)
		}
		if strings.Contains(got, key) {
			t.Errorf("%s contains the encryption key:\n%s", name, got)
		}
		if strings.Contains(got, "pa55word") {
			t.Errorf("%s contains the database password:\n%s", name, got)
		}
	}
	if !strings.Contains(logged.String(), `"issuer":"https://sotto.corp.example"`) {
		t.Errorf("slog JSON = %s, want the issuer in it", logged.String())
	}
}

func TestProblemsHideSecrets(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		env   map[string]string
	}{
		{
			name: "invalid encryption key from environment",
			env:  map[string]string{"SOTTO_KEYS_ENCRYPTION_KEY": testSecret},
		},
		{
			name:  "encryption key of wrong type in file",
			files: map[string]string{"sotto.yaml": testMain + "keys:\n  encryption_key: [" + testSecret + "]\n"},
		},
		{
			name:  "client secret of wrong type",
			files: map[string]string{"clients.yaml": testClients + "    client_secret: [" + testSecret + "]\n"},
		},
		{
			name:  "secret on a public client",
			files: map[string]string{"clients.yaml": testClients + "    client_secret: " + testSecret + "\n"},
		},
		{
			name:  "secret pasted as hash",
			files: map[string]string{"clients.yaml": "clients:\n  - client_id: c\n    client_secret_hash: " + testSecret + "\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, value := range tt.env {
				t.Setenv(name, value)
			}
			_, err := Load(writeSetup(t, tt.files))
			ps := problemsOf(t, err)
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("Error() contains the secret:\n%v", err)
			}
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%s", len(ps), listProblems(ps))
			}
		})
	}
}

func TestStorageLogValueHidesPassword(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
	}{
		{"url with password", "postgres://sotto:pa55word@db.internal/sotto"},
		{"url with password parameter", "postgres://db.internal/sotto?user=sotto&password=pa55word"},
		{"key value with password", "host=db.internal user=sotto password=pa55word dbname=sotto"},
		{"key value with quoted password", "host=db.internal password='pa55 word' dbname=sotto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Storage{Driver: DriverPostgres, DSN: tt.dsn}.LogValue().String()
			if strings.Contains(got, "pa55") {
				t.Errorf("LogValue = %s, want the password hidden", got)
			}
			if !strings.Contains(got, "db.internal") {
				t.Errorf("LogValue = %s, want the host kept", got)
			}
		})
	}
}

func TestDurationUnmarshalYAML(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    Duration
		wantErr bool
	}{
		{"minutes", "d: 5m", Duration(5 * time.Minute), false},
		{"seconds", "d: 90s", Duration(90 * time.Second), false},
		{"hours and minutes", "d: 1h30m", Duration(90 * time.Minute), false},
		{"bare number", "d: 300", 0, true},
		{"word", "d: soon", 0, true},
		{"list", "d: [5m]", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte(tt.yaml), &out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if out.D != tt.want {
				t.Errorf("got %v, want %v", out.D, tt.want)
			}
		})
	}
}

func TestDecodeDurationHook(t *testing.T) {
	tests := []struct {
		name    string
		data    any
		want    any
		wantErr bool
	}{
		{"string", "2m", Duration(2 * time.Minute), false},
		{"duration", Duration(time.Second), Duration(time.Second), false},
		{"time duration", 3 * time.Second, Duration(3 * time.Second), false},
		{"integer", 300, nil, true},
		{"bad string", "2 minutes", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeDuration(nil, durationType, tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	text, err := Duration(90 * time.Second).MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(text), "1m30s"; got != want {
		t.Errorf("MarshalText = %q, want %q", got, want)
	}
	if got, want := Duration(time.Minute).Duration(), time.Minute; got != want {
		t.Errorf("Duration() = %v, want %v", got, want)
	}
}

func TestValidationErrorLists(t *testing.T) {
	err := &ValidationError{Problems: []Problem{
		{File: "sotto.yaml", Key: "issuer", Value: "http://a", Expected: "https"},
		{File: "catalog.yaml", Key: "actions[0].scope", Expected: "a scope token"},
	}}
	want := "invalid configuration: 2 problems\n" +
		"  sotto.yaml: issuer: got \"http://a\", expected https\n" +
		"  catalog.yaml: actions[0].scope: expected a scope token"
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}
