package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const redacted = "[redacted]"

// Secret is a string that must never reach a log or an error message.
// String, GoString, LogValue and the text and JSON encodings all return
// "[redacted]" for a non-empty value. Convert it with string(s) only where
// the value itself is needed.
type Secret string

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the same as String, so that %#v hides the value too.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler, so that JSON and YAML
// encoders write "[redacted]" in place of the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Duration is a time.Duration that decodes from a Go duration string such
// as "90s", "5m" or "1h30m" in YAML and in environment variables. A bare
// number is rejected, because it would otherwise be read as nanoseconds.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String, for example "5m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with time.ParseDuration.
func (d *Duration) UnmarshalText(text []byte) error {
	parsed, err := time.ParseDuration(strings.TrimSpace(string(text)))
	if err != nil {
		return &durationError{value: string(text)}
	}
	*d = Duration(parsed)
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler. It reports errors as a
// yaml.TypeError with the line, so the decoder goes on and gathers the
// other errors of the file.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode || node.Tag != "!!str" {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf("line %d: invalid duration %q: %s", node.Line, node.Value, durationExpected),
		}}
	}
	if err := d.UnmarshalText([]byte(node.Value)); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", node.Line, err)}}
	}
	return nil
}

const durationExpected = "a duration with a unit, such as 90s, 5m or 1h30m"

// durationError reports a value that is not a duration.
type durationError struct {
	value string
}

func (e *durationError) Error() string {
	return fmt.Sprintf("invalid duration %q: %s", e.value, durationExpected)
}

var durationType = reflect.TypeOf(Duration(0))

// decodeDuration is a mapstructure decode hook for Duration fields. It
// accepts strings (from YAML and the environment), Duration (from defaults)
// and time.Duration, and rejects everything else.
func decodeDuration(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch value := data.(type) {
	case Duration:
		return value, nil
	case time.Duration:
		return Duration(value), nil
	case string:
		var d Duration
		if err := d.UnmarshalText([]byte(value)); err != nil {
			return nil, err
		}
		return d, nil
	default:
		return nil, &durationError{value: fmt.Sprint(data)}
	}
}
