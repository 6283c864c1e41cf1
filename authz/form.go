package authz

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/sotto-auth/sotto/internal/oauth"
)

// repeatable are the parameters RFC 8693 §2.1 lets a token exchange
// request repeat, to name several targets.
var repeatable = map[string]bool{"audience": true, "resource": true}

// parseForm reads an application/x-www-form-urlencoded POST body (RFC
// 6749 §3.2) of at most maxBytes, refusing a repeated parameter (RFC 6749
// §3.2: parameters must not be included more than once) and a parameter in
// the query string. It sets r.PostForm and r.Form, so fosite does not read
// the body again.
func parseForm(r *http.Request, maxBytes int64) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, &oauth.Error{Code: "invalid_request", Reason: "method_not_post", Status: http.StatusMethodNotAllowed,
			Description: fmt.Sprintf("The endpoint accepts POST, not %s.", r.Method),
			Header:      http.Header{"Allow": {http.MethodPost}}}
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return nil, oauth.InvalidRequest("content_type",
			"The request body must be application/x-www-form-urlencoded (RFC 6749 §3.2).")
	}
	if r.URL.RawQuery != "" {
		return nil, oauth.InvalidRequest("query_parameters",
			"Send the parameters in the request body, not in the URL query (RFC 6749 §3.2).")
	}

	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &oauth.Error{Code: "invalid_request", Reason: "body_too_large", Status: http.StatusRequestEntityTooLarge,
			Description: fmt.Sprintf("The request body is larger than %d bytes.", maxBytes)}
	}
	if err != nil {
		return nil, oauth.InvalidRequest("body_unreadable", "The request body could not be read.")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, oauth.InvalidRequest("body_malformed",
			"The request body is not valid application/x-www-form-urlencoded data.")
	}
	for name, values := range form {
		if len(values) > 1 && !repeatable[name] {
			return nil, oauth.InvalidRequest("parameter_repeated", fmt.Sprintf(
				"The parameter %s is included %d times; send each parameter at most once (RFC 6749 §3.2).",
				quote(name), len(values)))
		}
	}
	r.PostForm = form
	r.Form = form
	return form, nil
}
