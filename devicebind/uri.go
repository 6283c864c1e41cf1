package devicebind

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// maxURIBytes bounds the input of NormalizeURI. It matches the proof size
// limit, which already bounds every htu.
const maxURIBytes = 8 << 10

// uriError is a NormalizeURI failure. Its reason contains none of the input,
// so it can go into an error description as it is.
type uriError struct {
	reason string
}

func (e *uriError) Error() string {
	return "devicebind: invalid URI: " + e.reason
}

func invalidURI(reason string) error {
	return &uriError{reason: reason}
}

func uriReason(err error) string {
	var u *uriError
	if errors.As(err, &u) {
		return u.reason
	}
	return "it could not be parsed"
}

// NormalizeURI returns the form of an absolute http or https URI that the
// htu check compares (RFC 9449, Section 4.3, step 9). It applies the
// syntax-based normalization of RFC 3986, Section 6.2.2 and the scheme-based
// normalization of Section 6.2.3:
//
//   - scheme and host are lower-cased;
//   - percent-encoded unreserved characters are decoded, and every other
//     percent-encoding uses upper-case hex digits;
//   - dot segments are removed from the path (RFC 3986, Section 5.2.4);
//   - an empty or default port (80 for http, 443 for https) is removed, and
//     leading zeros of the port are dropped;
//   - an empty path becomes "/";
//   - the query and the fragment are dropped.
//
// An IPv6 literal host is also written in its canonical form (RFC 5952).
// NormalizeURI rejects a relative URI, any other scheme, an empty host, a
// userinfo part (RFC 9110, Section 4.2.4), and characters that RFC 3986
// does not allow in the host, port or path.
func NormalizeURI(raw string) (string, error) {
	if len(raw) > maxURIBytes {
		return "", invalidURI("it is longer than 8 KiB")
	}
	// RFC 3986, Section 2: a URI consists of printable US-ASCII characters.
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return "", invalidURI("it contains spaces, control or non-ASCII characters")
		}
	}

	// RFC 3986, Section 4.3: an absolute URI starts with a scheme.
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" {
		return "", invalidURI("it has no scheme")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", invalidURI("the scheme is not http or https")
	}

	// RFC 9110, Sections 4.2.1 and 4.2.2: http and https URIs have an
	// authority with a non-empty host.
	rest, ok = strings.CutPrefix(rest, "//")
	if !ok {
		return "", invalidURI("it has no authority")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, path := rest[:end], rest[end:]

	// RFC 9449, Section 4.3, step 9: query and fragment parts are ignored.
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}

	host, port, err := normalizeAuthority(authority, scheme)
	if err != nil {
		return "", err
	}

	path, err = normalizePercent(path, isPathByte, false)
	if err != nil {
		return "", err
	}
	path = removeDotSegments(path)
	// RFC 3986, Section 6.2.3: an empty path of an http(s) URI is "/".
	if path == "" {
		path = "/"
	}

	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + 6 + len(path))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	b.WriteString(path)
	return b.String(), nil
}

// normalizeAuthority returns the normalized host and the port to keep,
// which is empty when the port is absent, empty or the scheme's default.
func normalizeAuthority(authority, scheme string) (host, port string, err error) {
	// RFC 9110, Section 4.2.4: a recipient treats userinfo in an http(s) URI
	// as an error.
	if strings.Contains(authority, "@") {
		return "", "", invalidURI("it contains userinfo")
	}

	var portPart string
	if strings.HasPrefix(authority, "[") {
		// RFC 3986, Section 3.2.2: an IP literal is enclosed in brackets.
		closing := strings.IndexByte(authority, ']')
		if closing < 0 {
			return "", "", invalidURI("the IPv6 host has no closing bracket")
		}
		host, err = normalizeIPv6(authority[1:closing])
		if err != nil {
			return "", "", err
		}
		after := authority[closing+1:]
		if after != "" {
			var ok bool
			if portPart, ok = strings.CutPrefix(after, ":"); !ok {
				return "", "", invalidURI("the IPv6 host is followed by more than a port")
			}
		}
	} else {
		host = authority
		if i := strings.LastIndexByte(authority, ':'); i >= 0 {
			host, portPart = authority[:i], authority[i+1:]
		}
		// RFC 3986, Section 6.2.2.1: the host is case-insensitive, so it is
		// lower-cased.
		host, err = normalizePercent(host, isRegNameByte, true)
		if err != nil {
			return "", "", err
		}
	}
	if host == "" {
		return "", "", invalidURI("the host is empty")
	}

	port, err = normalizePort(portPart, scheme)
	return host, port, err
}

func normalizeIPv6(literal string) (string, error) {
	// A zone identifier (RFC 6874) names an interface of one machine and has
	// no place in a URI that another machine compares.
	if strings.Contains(literal, "%") {
		return "", invalidURI("the IPv6 host has a zone identifier")
	}
	addr, err := netip.ParseAddr(literal)
	if err != nil || !addr.Is6() {
		return "", invalidURI("the bracketed host is not an IPv6 address")
	}
	return "[" + addr.String() + "]", nil
}

// normalizePort applies RFC 3986, Section 6.2.3: an empty port or the
// scheme's default port is removed.
func normalizePort(port, scheme string) (string, error) {
	if port == "" {
		return "", nil
	}
	// RFC 3986, Section 3.2.3: port = *DIGIT.
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", invalidURI("the port is not a decimal number")
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", invalidURI("the port is larger than 65535")
	}
	if scheme == "http" && n == 80 || scheme == "https" && n == 443 {
		return "", nil
	}
	return strconv.FormatUint(n, 10), nil
}

// normalizePercent checks that every byte of s is allowed or part of a
// percent-encoding, then applies RFC 3986, Section 6.2.2.1 and 6.2.2.2:
// percent-encoded unreserved characters are decoded and other
// percent-encodings get upper-case hex digits. With lower set, letters
// outside percent-encodings are lower-cased as well.
func normalizePercent(s string, allowed func(byte) bool, lower bool) (string, error) {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", invalidURI("it has a malformed percent-encoding")
			}
			clean = false
			i += 2
		case !allowed(c):
			return "", invalidURI("it contains a character that is not allowed in the host or path")
		case lower && 'A' <= c && c <= 'Z':
			clean = false
		}
	}
	if clean {
		return s, nil
	}

	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			decoded := unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
			if isUnreserved(decoded) {
				c = decoded
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex[decoded>>4])
				b.WriteByte(upperHex[decoded&0xf])
				continue
			}
		}
		if lower && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// removeDotSegments implements the algorithm of RFC 3986, Section 5.2.4 for
// a path that is empty or starts with "/".
func removeDotSegments(path string) string {
	if !strings.Contains(path, "/.") {
		return path
	}

	out := make([]byte, 0, len(path))
	in := path
	for in != "" {
		switch {
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			out = dropLastSegment(out)
		case in == "/..":
			in = "/"
			out = dropLastSegment(out)
		default:
			// Move the first segment, with its leading "/", to the output.
			next := strings.IndexByte(in[1:], '/')
			if next < 0 {
				next = len(in) - 1
			}
			out = append(out, in[:next+1]...)
			in = in[next+1:]
		}
	}
	return string(out)
}

func dropLastSegment(out []byte) []byte {
	i := len(out) - 1
	for i >= 0 && out[i] != '/' {
		i--
	}
	if i < 0 {
		return out[:0]
	}
	return out[:i]
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isUnreserved reports whether c is unreserved (RFC 3986, Section 2.3).
func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isSubDelim reports whether c is a sub-delim (RFC 3986, Section 2.2).
func isSubDelim(c byte) bool {
	return strings.IndexByte("!$&'()*+,;=", c) >= 0
}

// isRegNameByte reports whether c may appear unencoded in a reg-name
// (RFC 3986, Section 3.2.2).
func isRegNameByte(c byte) bool {
	return isUnreserved(c) || isSubDelim(c)
}

// isPathByte reports whether c may appear unencoded in a path: a pchar or
// "/" (RFC 3986, Section 3.3).
func isPathByte(c byte) bool {
	return isUnreserved(c) || isSubDelim(c) || c == ':' || c == '@' || c == '/'
}
