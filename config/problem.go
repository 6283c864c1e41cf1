package config

import (
	"fmt"
	"strings"
)

// Problem is one finding that makes a configuration unusable.
type Problem struct {
	// File is the file that holds the value, or "environment variable NAME"
	// for a value that came from the environment.
	File string
	// Key is the key path, such as "trusted_issuers[0].audience" or
	// "actions[2].max_ttl". It is empty for a problem with a whole file.
	Key string
	// Value is the offending value as written. It is empty for a missing
	// value and "[redacted]" for a secret.
	Value string
	// Expected describes a valid value.
	Expected string
}

// String formats the problem as one line: file, key, value and expectation.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	if p.Value != "" {
		fmt.Fprintf(&b, "got %q, ", p.Value)
	}
	b.WriteString("expected ")
	b.WriteString(p.Expected)
	return b.String()
}

// ValidationError lists every problem found in a configuration, so that an
// operator can fix them all in one pass.
type ValidationError struct {
	Problems []Problem
}

// Error lists every problem, one a line, after a count.
func (e *ValidationError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("invalid configuration: 1 problem")
	} else {
		fmt.Fprintf(&b, "invalid configuration: %d problems", len(e.Problems))
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// problems collects findings for one file.
type problems struct {
	list []Problem
}

func (ps *problems) add(file, key, value, expected string) {
	ps.list = append(ps.list, Problem{File: file, Key: key, Value: value, Expected: expected})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps.list}
}
