package config

import (
	"slices"
	"strings"
)

// DeviceAttester is a device management service (an MDM) whose signed
// device attestations make a device managed.
type DeviceAttester struct {
	// Issuer is compared as an exact string with the attestation's iss.
	Issuer string `mapstructure:"issuer"`
	// JWKSFile is the absolute path of a JWK Set file. Exactly one of
	// JWKSFile and JWKSURI is set.
	JWKSFile string `mapstructure:"jwks_file"`
	// JWKSURI is the URL of the attester's JWK Set.
	JWKSURI string `mapstructure:"jwks_uri"`
	// Audience is the aud the attestation must contain. Empty means
	// Sotto's issuer.
	Audience string `mapstructure:"audience"`
	// Algorithms are the JWS algorithms accepted on attestations.
	Algorithms []string `mapstructure:"algorithms"`
}

func (c *Config) applyAttesterDefaults() {
	for i := range c.DeviceAttesters {
		a := &c.DeviceAttesters[i]
		if a.Audience == "" {
			a.Audience = strings.TrimRight(strings.TrimSpace(c.Issuer), "/")
		}
		if len(a.Algorithms) == 0 {
			a.Algorithms = append([]string(nil), defaultAlgorithms...)
		}
	}
}

func (c *Config) validateDeviceAttesters(ps *problems) {
	seen := map[string]int{}
	for i, a := range c.DeviceAttesters {
		key := indexKey("device_attesters", i)
		switch {
		case a.Issuer == "":
			ps.add(c.File, key+".issuer", "", "the attester's iss value, such as https://mdm.corp.example")
		case checkHTTPSURL(a.Issuer) != "":
			ps.add(c.File, key+".issuer", a.Issuer, checkHTTPSURL(a.Issuer))
		}
		if first, dup := seen[a.Issuer]; dup && a.Issuer != "" {
			ps.add(c.File, key+".issuer", a.Issuer, "an issuer not already listed in "+indexKey("device_attesters", first))
		} else {
			seen[a.Issuer] = i
		}
		c.validateJWKS(ps, key, TrustedIssuer{JWKSFile: a.JWKSFile, JWKSURI: a.JWKSURI})
		if a.Audience == "" {
			ps.add(c.File, key+".audience", "", "the aud the attester puts in attestations for Sotto")
		}
		for j, alg := range a.Algorithms {
			// RFC 8725, Section 3.1: an allowlist of asymmetric algorithms.
			if !slices.Contains(asymmetricAlgorithms, alg) {
				ps.add(c.File, indexKey(key+".algorithms", j), alg, "one of "+strings.Join(asymmetricAlgorithms, ", "))
			}
		}
	}
}
