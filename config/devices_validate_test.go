package config

import "testing"

func TestValidateDeviceSettings(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantKey string
	}{
		{"unknown device trust", func(c *Config) { c.Actions[0].DeviceTrust = "trusted" }, "actions[0].device_trust"},
		{"nonce on a client without the exchange grant", func(c *Config) {
			c.Clients[0].RequireDPoPNonce = true
			c.Clients[0].GrantTypes = nil
		}, "clients[0].require_dpop_nonce"},
		{"zero nonce lifetime", func(c *Config) { c.DPoP.NonceLifetime = 0 }, "dpop.nonce_lifetime"},
		{"attester without issuer", func(c *Config) {
			c.DeviceAttesters = []DeviceAttester{{JWKSURI: "https://mdm.example/jwks", Audience: "sotto"}}
		}, "device_attesters[0].issuer"},
		{"attester without keys", func(c *Config) {
			c.DeviceAttesters = []DeviceAttester{{Issuer: "https://mdm.example", Audience: "sotto"}}
		}, "device_attesters[0].jwks_file"},
		{"attester with HMAC", func(c *Config) {
			c.DeviceAttesters = []DeviceAttester{{Issuer: "https://mdm.example", JWKSURI: "https://mdm.example/jwks",
				Audience: "sotto", Algorithms: []string{"HS256"}}}
		}, "device_attesters[0].algorithms[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			ps := problemsOf(t, c.Validate())
			if _, ok := findProblem(ps, tt.wantKey); !ok {
				t.Errorf("no problem at %s in:\n%s", tt.wantKey, listProblems(ps))
			}
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%s", len(ps), listProblems(ps))
			}
		})
	}
}
