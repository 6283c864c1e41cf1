package config

import (
	"strings"
	"testing"
)

// TestValidateStepUp checks that each invalid step-up setting is one
// problem naming its key.
func TestValidateStepUp(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantKey string
	}{
		{"zero challenge_ttl", func(c *Config) { c.StepUp.ChallengeTTL = 0 }, "step_up.challenge_ttl"},
		{"interval not below challenge_ttl", func(c *Config) { c.StepUp.Interval = c.StepUp.ChallengeTTL }, "step_up.interval"},
		{"zero max_challenges", func(c *Config) { c.StepUp.Push.MaxChallenges = 0 }, "step_up.push.max_challenges"},
		{"zero max_denials", func(c *Config) { c.StepUp.Push.MaxDenials = 0 }, "step_up.push.max_denials"},
		{"webhook over plain http", func(c *Config) {
			c.StepUp.Push.Webhook = Webhook{URL: "http://push.corp.example/hook", Secret: Secret(strings.Repeat("k", 32))}
		}, "step_up.push.webhook.url"},
		{"short webhook secret", func(c *Config) {
			c.StepUp.Push.Webhook = Webhook{URL: "https://push.corp.example/hook", Secret: "short"}
		}, "step_up.push.webhook.secret"},
		{"origin with a path", func(c *Config) { c.WebAuthn.Origins = []string{"https://sotto.corp.example/x"} }, "webauthn.origins[0]"},
		{"rp_id with a scheme", func(c *Config) { c.WebAuthn.RPID = "https://sotto.corp.example" }, "webauthn.rp_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(c)
			var ps problems
			c.validateStepUp(&ps)
			if len(ps.list) != 1 || ps.list[0].Key != tt.wantKey {
				t.Errorf("problems = %v, want one for %s", ps.list, tt.wantKey)
			}
		})
	}
	var ps problems
	Default().validateStepUp(&ps)
	if len(ps.list) != 0 {
		t.Errorf("defaults have problems: %v", ps.list)
	}
}

// TestValidateDetails checks the authorization_details declaration.
func TestValidateDetails(t *testing.T) {
	five, one := 5.0, 1.0
	tests := []struct {
		name    string
		details AuthorizationDetails
		wantKey string
	}{
		{"missing type", AuthorizationDetails{Fields: map[string]DetailField{"a": {Type: "number"}}}, ".type"},
		{"no fields", AuthorizationDetails{Type: "t"}, ".fields"},
		{"unknown field type", AuthorizationDetails{Type: "t", Fields: map[string]DetailField{"a": {Type: "bool"}}}, ".fields.a.type"},
		{"field named type", AuthorizationDetails{Type: "t", Fields: map[string]DetailField{"type": {Type: "string", MaxLength: 4}}}, ".fields.type"},
		{"min above max", AuthorizationDetails{Type: "t", Fields: map[string]DetailField{"a": {Type: "number", Min: &five, Max: &one}}}, ".fields.a.min"},
		{"enum on a number", AuthorizationDetails{Type: "t", Fields: map[string]DetailField{"a": {Type: "number", Enum: []string{"x"}}}}, ".fields.a"},
		{"bounds on a string", AuthorizationDetails{Type: "t", Fields: map[string]DetailField{"a": {Type: "string", Max: &one, MaxLength: 3}}}, ".fields.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps problems
			validateDetails(&ps, "catalog.yaml", "actions[0]", &tt.details)
			want := "actions[0].authorization_details" + tt.wantKey
			if len(ps.list) != 1 || ps.list[0].Key != want {
				t.Errorf("problems = %v, want one for %s", ps.list, want)
			}
		})
	}
}
