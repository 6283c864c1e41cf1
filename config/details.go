package config

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// AuthorizationDetails declares the RFC 9396 authorization_details an
// exchange for an action must send: one object of Type whose members are
// among Fields.
type AuthorizationDetails struct {
	// Type is the value of the object's type member (RFC 9396, Section 2).
	Type string `yaml:"type" json:"type"`
	// Fields are the members the object may carry besides type, by name.
	Fields map[string]DetailField `yaml:"fields" json:"fields"`
}

// DetailField constrains one member of an authorization details object.
type DetailField struct {
	// Type is "number" or "string".
	Type string `yaml:"type" json:"type"`
	// Required makes the member mandatory.
	Required bool `yaml:"required" json:"required,omitempty"`
	// Min and Max bound a number, inclusive. Nil means unbounded.
	Min *float64 `yaml:"min" json:"min,omitempty"`
	Max *float64 `yaml:"max" json:"max,omitempty"`
	// Enum lists the values a string may take. Empty allows any string.
	Enum []string `yaml:"enum" json:"enum,omitempty"`
	// MaxLength bounds a string, in characters. Zero means 256.
	MaxLength int `yaml:"max_length" json:"max_length,omitempty"`
}

// Detail field types.
const (
	DetailNumber = "number"
	DetailString = "string"
)

// DefaultDetailMaxLength is the length limit of a string member without
// max_length.
const DefaultDetailMaxLength = 256

func (d *AuthorizationDetails) applyDefaults() {
	for name, f := range d.Fields {
		f.Type = strings.ToLower(strings.TrimSpace(f.Type))
		if f.Type == DetailString && f.MaxLength == 0 {
			f.MaxLength = DefaultDetailMaxLength
		}
		d.Fields[name] = f
	}
}

// validateDetails checks the authorization_details of the action at key.
func validateDetails(ps *problems, path, key string, d *AuthorizationDetails) {
	key += ".authorization_details"
	if d.Type == "" || strings.ContainsAny(d.Type, " \t\r\n\"\\") {
		ps.add(path, key+".type", d.Type, "a type name without spaces, quotes or backslashes, such as expense_approval")
	}
	if len(d.Fields) == 0 {
		ps.add(path, key+".fields", "", "at least one field the details object carries")
	}
	names := make([]string, 0, len(d.Fields))
	for name := range d.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := d.Fields[name]
		fkey := key + ".fields." + name
		if name == "type" || name == "" || strings.ContainsAny(name, " \t\r\n\"\\") {
			ps.add(path, fkey, name, "a field name other than type, without spaces, quotes or backslashes")
		}
		switch f.Type {
		case DetailNumber:
			if len(f.Enum) > 0 || f.MaxLength != 0 {
				ps.add(path, fkey, "", "enum and max_length only on a string field")
			}
			if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
				ps.add(path, fkey+".min", "", "a min not greater than max")
			}
		case DetailString:
			if f.Min != nil || f.Max != nil {
				ps.add(path, fkey, "", "min and max only on a number field")
			}
			if f.MaxLength < 0 {
				ps.add(path, fkey+".max_length", "", "a length of 1 or more")
			}
			for j, v := range f.Enum {
				if utf8.RuneCountInString(v) > f.MaxLength {
					ps.add(path, indexKey(fkey+".enum", j), v, "a value no longer than max_length")
				}
			}
		default:
			ps.add(path, fkey+".type", f.Type, "number or string")
		}
	}
}
