package stepup

import (
	"net/url"

	"github.com/sotto-auth/sotto/internal/oauth"
)

// form is a parsed request body.
type form map[string][]string

// Get returns the first value of key.
func (f form) Get(key string) string {
	if v := f[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// parseQuery parses a form body and rejects a repeated parameter (RFC
// 6749, Section 3.2).
func parseQuery(body string) (form, error) {
	values, err := url.ParseQuery(body)
	if err != nil {
		return nil, oauth.InvalidRequest("form_malformed", "The body is not valid form encoding.")
	}
	for k, v := range values {
		if len(v) > 1 {
			_ = k
			return nil, oauth.InvalidRequest("parameter_repeated", "A parameter is repeated; send each parameter once (RFC 6749, Section 3.2).")
		}
	}
	return form(values), nil
}
