package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix starts the name of every environment variable Load reads. The
// rest of the name is the key path upper-cased with "." replaced by "_",
// so tokens.max_ttl is SOTTO_TOKENS_MAX_TTL.
const EnvPrefix = "SOTTO"

// Load reads the config file at path, then the SOTTO_* environment (which
// wins over the file), then the clients and catalog files it names. It
// resolves relative paths against the folder of the config file, applies
// defaults, clamps action lifetimes to tokens.max_ttl, and validates the
// result. Every problem of the three files is returned at once in a
// *ValidationError. A config file that cannot be read is a plain error.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve config path %q: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}

	c, decodeProblems := decodeMain(abs, data)
	if c == nil {
		return nil, &ValidationError{Problems: decodeProblems}
	}
	c.applyDefaults()
	c.resolvePaths()

	var fileProblems []Problem
	if c.ClientsFile != "" {
		var ps []Problem
		c.Clients, ps = decodeClients(c.ClientsFile)
		fileProblems = append(fileProblems, ps...)
	}
	if c.CatalogFile != "" {
		var ps []Problem
		c.Actions, ps = decodeCatalog(c.CatalogFile)
		fileProblems = append(fileProblems, ps...)
	}

	all := append(decodeProblems, fileProblems...)
	all = append(all, withoutDecoded(c.validate(), all)...)
	if len(all) > 0 {
		return nil, &ValidationError{Problems: all}
	}

	c.clampActions()
	c.addWarnings()
	return c, nil
}

// decodeMain decodes the config file and the environment with viper. It
// returns a nil Config only when the file is not valid YAML.
func decodeMain(file string, data []byte) (*Config, []Problem) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))

	c := Default()
	c.File = file
	c.Dir = filepath.Dir(file)
	c.fromEnv = map[string]string{}

	// Viper reads the environment only for registered keys, so every scalar
	// key is registered with its default before the file is read.
	for _, leaf := range scalarKeys(reflect.ValueOf(c).Elem(), "") {
		v.SetDefault(leaf.key, leaf.value)
		name := envName(leaf.key)
		_ = v.BindEnv(leaf.key, name) // viper v1.21 fails only when given no key
		if os.Getenv(name) != "" {
			c.fromEnv[leaf.key] = name
		}
	}

	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, []Problem{{File: file, Expected: "valid YAML: " + yamlMessage(err)}}
	}

	var ps problems
	err := v.UnmarshalExact(c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		decodeDuration,
		mapstructure.StringToSliceHookFunc(","),
	)))
	for _, e := range flattenErrors(err) {
		ps.list = append(ps.list, c.decodeProblem(e)...)
	}
	return c, ps.list
}

// yamlMessage strips viper's wrapping from a YAML syntax error, keeping the
// "yaml: line N: ..." text.
func yamlMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "yaml: "); i >= 0 {
		return msg[i:]
	}
	return msg
}

// envName returns the environment variable for a key path.
func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

type scalarKey struct {
	key   string
	value any
}

// scalarKeys lists the key path and value of every scalar field reachable
// through nested structs, skipping slices and fields tagged "-". Lists of
// objects such as trusted_issuers cannot come from the environment.
func scalarKeys(v reflect.Value, prefix string) []scalarKey {
	var keys []scalarKey
	t := v.Type()
	for i := range t.NumField() {
		field := t.Field(i)
		tag := field.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		switch field.Type.Kind() {
		case reflect.Struct:
			keys = append(keys, scalarKeys(v.Field(i), key+".")...)
		case reflect.Slice, reflect.Map:
		default:
			keys = append(keys, scalarKey{key: key, value: v.Field(i).Interface()})
		}
	}
	return keys
}

// flattenErrors unpacks the tree that mapstructure returns, an error that
// wraps an errors.Join of DecodeErrors, into the DecodeErrors.
func flattenErrors(err error) []error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*mapstructure.DecodeError); ok {
		return []error{err}
	}
	if wrapper, ok := err.(interface{ Unwrap() error }); ok && wrapper.Unwrap() != nil {
		return flattenErrors(wrapper.Unwrap())
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// knownKey starts the Expected text of every unknown-key problem.
const knownKey = "a known key"

// invalidKeys is the start of the mapstructure v2 message (v2.4.0 and
// v2.5.0) for unknown keys.
const invalidKeys = "has invalid keys: "

// decodeProblem turns one mapstructure error into problems: one per unknown
// key, or one for a value of the wrong type.
func (c *Config) decodeProblem(err error) []Problem {
	var de *mapstructure.DecodeError
	if !errors.As(err, &de) {
		return []Problem{{File: c.File, Expected: "a decodable configuration: " + err.Error()}}
	}
	key := de.Name()
	cause := de.Unwrap()
	// Since v2.5.0, mapstructure names the target type, such as
	// config.Config, where the key path is empty. Keys are snake_case, so
	// a name with an upper-case letter is such a type name.
	if strings.ToLower(key) != key {
		key = ""
	}

	// NOTE: mapstructure has no error type for unknown keys, so they are
	// read from its message. A change of that wording in an upgrade turns
	// them into one problem per map, which a test catches.
	if msg := cause.Error(); strings.HasPrefix(msg, invalidKeys) {
		var out []Problem
		for _, name := range strings.Split(strings.TrimPrefix(msg, invalidKeys), ", ") {
			out = append(out, Problem{
				File:     c.File,
				Key:      joinKey(key, name),
				Expected: knownKey + " (see docs/configuration.md)",
			})
		}
		return out
	}

	p := Problem{File: c.fileFor(key), Key: key, Expected: cause.Error()}
	var unconvertible *mapstructure.UnconvertibleTypeError
	var parse *mapstructure.ParseError
	var duration *durationError
	switch {
	case errors.As(cause, &duration):
		p.Value = duration.value
		p.Expected = durationExpected
	case errors.As(cause, &unconvertible):
		p.Value = fmt.Sprint(unconvertible.Value)
		p.Expected = "a value of type " + typeName(unconvertible.Expected.Type())
	case errors.As(cause, &parse):
		p.Value = fmt.Sprint(parse.Value)
		p.Expected = "a value of type " + typeName(parse.Expected.Type())
	}
	if isSecretKey(key) && p.Value != "" {
		p.Value = redacted
	}
	return []Problem{p}
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// typeName names a Go type in the words of a YAML file.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Int64, t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Struct:
		return "mapping"
	}
	return t.String()
}

// isSecretKey reports whether the value at key must never be shown.
func isSecretKey(key string) bool {
	return key == "keys.encryption_key" || strings.HasSuffix(key, ".client_secret")
}

// fileFor returns the source of a key of the main config: the environment
// variable that set it, or the config file.
func (c *Config) fileFor(key string) string {
	if name, ok := c.fromEnv[key]; ok {
		return "environment variable " + name
	}
	return c.File
}

// withoutDecoded drops validation problems about values that already failed
// to decode, which would only repeat them as "missing".
func withoutDecoded(validation, decoded []Problem) []Problem {
	var out []Problem
	for _, p := range validation {
		repeated := false
		for _, d := range decoded {
			if strings.HasPrefix(d.Expected, knownKey) {
				continue // an unknown key hides no other finding
			}
			if p.File == d.File && (p.Key == d.Key || strings.HasPrefix(p.Key, d.Key+".") ||
				strings.HasPrefix(p.Key, d.Key+"[") || d.Key == "") {
				repeated = true
				break
			}
		}
		if !repeated {
			out = append(out, p)
		}
	}
	return out
}
