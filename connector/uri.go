package connector

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// normalizeURI returns the form of an absolute http or https URI that the
// htu check compares (RFC 9449, Section 4.3, step 9), after the syntax- and
// scheme-based normalization of RFC 3986, Sections 6.2.2 and 6.2.3:
// lower-case scheme and host, percent-encoded unreserved characters
// decoded and other percent-encodings in upper case, dot segments removed,
// the default port dropped, an empty path made "/", and the query and
// fragment removed. Errors name no part of the input.
func normalizeURI(raw string) (string, error) {
	if len(raw) > maxProofBytes {
		return "", errors.New("the URI is too long")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return "", errors.New("the URI contains spaces, control or non-ASCII characters")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("the URI cannot be parsed")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("the URI is not an absolute http or https URI")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errors.New("the URI has no host")
	}
	// RFC 9110, Section 4.2.4: http and https URIs carry no userinfo.
	if u.User != nil {
		return "", errors.New("the URI contains userinfo")
	}

	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		ip := net.ParseIP(host)
		if ip == nil {
			return "", errors.New("the URI has an invalid IPv6 host")
		}
		host = "[" + ip.String() + "]"
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n > 65535 {
			return "", errors.New("the URI has an invalid port")
		}
		if !(scheme == "http" && n == 80) && !(scheme == "https" && n == 443) {
			host += ":" + strconv.Itoa(n)
		}
	}

	path, err := normalizePercent(u.EscapedPath())
	if err != nil {
		return "", err
	}
	path = removeDotSegments(path)
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent decodes percent-encoded unreserved characters and
// upper-cases the hex digits of the others (RFC 3986, Sections 2.1, 2.3
// and 6.2.2.2).
func normalizePercent(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("the URI has an incomplete percent-encoding")
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("the URI has an invalid percent-encoding")
		}
		c := byte(n)
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(s[i+1:i+3]))
		}
		i += 2
	}
	return b.String(), nil
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments applies RFC 3986, Section 5.2.4 to an absolute path.
// Unlike path.Clean it keeps empty segments, which are significant.
func removeDotSegments(in string) string {
	var out []string
	segments := strings.Split(in, "/")
	for i, seg := range segments {
		last := i == len(segments)-1
		switch seg {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	return strings.Join(out, "/")
}
