package exchange

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/internal/oauth"
)

// CodeInvalidAuthorizationDetails is the error of RFC 9396, Section 5 for
// authorization_details that are malformed, of an unknown type, or carry
// a member or value the catalog does not allow.
const CodeInvalidAuthorizationDetails = "invalid_authorization_details"

// maxDetailsBytes bounds the authorization_details parameter.
const maxDetailsBytes = 4 << 10

// Details are accepted authorization details: the canonical JSON array
// (members sorted, no spaces) and its SHA-256, which binds a step-up
// challenge to them.
type Details struct {
	JSON json.RawMessage
	// Hash is the base64url SHA-256 of JSON.
	Hash string
	// Fields are the members of the one object, type excluded.
	Fields map[string]any
}

// parseDetails checks the authorization_details parameter against the
// action's declaration (RFC 9396, Section 2 and 5). It returns nil details
// for an action that declares none and a request that sends none.
func parseDetails(raw string, action *Action) (*Details, error) {
	decl := action.Details
	if raw == "" {
		if decl == nil {
			return nil, nil
		}
		return nil, detailsError("authorization_details_missing", fmt.Sprintf(
			"The action %s requires authorization_details: send a JSON array with one object of type %s.",
			action.Scope, decl.Type))
	}
	if decl == nil {
		return nil, detailsError("authorization_details_unexpected", fmt.Sprintf(
			"The action %s takes no authorization_details; omit the parameter.", action.Scope))
	}
	if len(raw) > maxDetailsBytes {
		return nil, detailsError("authorization_details_too_large", fmt.Sprintf(
			"The authorization_details parameter is %d bytes; send at most %d.", len(raw), maxDetailsBytes))
	}

	// RFC 9396, Section 2: the parameter is a JSON array of objects, each
	// with a type member.
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var list []map[string]any
	if err := dec.Decode(&list); err != nil || dec.More() {
		return nil, detailsError("authorization_details_malformed",
			"The authorization_details parameter is not a JSON array of objects (RFC 9396, Section 2).")
	}
	if len(list) != 1 {
		return nil, detailsError("authorization_details_count", fmt.Sprintf(
			"The authorization_details array has %d objects; send exactly one, of type %s.", len(list), decl.Type))
	}
	obj := list[0]
	if t, _ := obj["type"].(string); t != decl.Type {
		return nil, detailsError("authorization_details_type", fmt.Sprintf(
			"The authorization_details type must be %s for the action %s.", decl.Type, action.Scope))
	}

	fields := make(map[string]any, len(obj)-1)
	for name, value := range obj {
		if name == "type" {
			continue
		}
		rule, ok := decl.Fields[name]
		if !ok {
			return nil, detailsError("authorization_details_field_unknown", fmt.Sprintf(
				"The authorization_details member %s is not declared for type %s; its members are %s.",
				safeName(name), decl.Type, strings.Join(fieldNames(decl), ", ")))
		}
		v, err := checkField(decl.Type, name, rule, value)
		if err != nil {
			return nil, err
		}
		fields[name] = v
	}
	for _, name := range fieldNames(decl) {
		if _, ok := obj[name]; !ok && decl.Fields[name].Required {
			return nil, detailsError("authorization_details_field_missing", fmt.Sprintf(
				"The authorization_details member %s is required for type %s.", name, decl.Type))
		}
	}

	canonical := map[string]any{"type": decl.Type}
	for k, v := range fields {
		canonical[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode([]map[string]any{canonical}); err != nil {
		return nil, oauth.ServerError(err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	sum := sha256.Sum256(out)
	return &Details{JSON: out, Hash: base64.RawURLEncoding.EncodeToString(sum[:]), Fields: fields}, nil
}

// checkField returns value as the canonical form of a member that rule
// allows: a float64 for a number, the string itself for a string.
func checkField(typ, name string, rule config.DetailField, value any) (any, error) {
	switch rule.Type {
	case config.DetailNumber:
		n, ok := value.(json.Number)
		f, err := n.Float64()
		if !ok || err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, detailsError("authorization_details_field_type", fmt.Sprintf(
				"The authorization_details member %s of type %s must be a number.", name, typ))
		}
		if rule.Min != nil && f < *rule.Min {
			return nil, detailsError("authorization_details_field_range", fmt.Sprintf(
				"The authorization_details member %s is %s, below the minimum %g.", name, n, *rule.Min))
		}
		if rule.Max != nil && f > *rule.Max {
			return nil, detailsError("authorization_details_field_range", fmt.Sprintf(
				"The authorization_details member %s is %s, above the maximum %g.", name, n, *rule.Max))
		}
		return f, nil
	default:
		s, ok := value.(string)
		if !ok {
			return nil, detailsError("authorization_details_field_type", fmt.Sprintf(
				"The authorization_details member %s of type %s must be a string.", name, typ))
		}
		if len(rule.Enum) > 0 && !slices.Contains(rule.Enum, s) {
			return nil, detailsError("authorization_details_field_enum", fmt.Sprintf(
				"The authorization_details member %s must be one of %s.", name, strings.Join(rule.Enum, ", ")))
		}
		if n := utf8.RuneCountInString(s); n > rule.MaxLength || !utf8.ValidString(s) {
			return nil, detailsError("authorization_details_field_length", fmt.Sprintf(
				"The authorization_details member %s has %d characters; send at most %d.", name, n, rule.MaxLength))
		}
		return s, nil
	}
}

func detailsError(reason, description string) *oauth.Error {
	return oauth.New(CodeInvalidAuthorizationDetails, reason, description)
}

func fieldNames(d *config.AuthorizationDetails) []string {
	names := make([]string, 0, len(d.Fields))
	for name := range d.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// safeName returns a member name fit for an error_description: printable
// ASCII without quote or backslash (RFC 6749, Section 5.2), at most 64
// bytes.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
