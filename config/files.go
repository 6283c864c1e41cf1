package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// clientsFile is the layout of the clients file.
type clientsFile struct {
	Clients []Client `yaml:"clients"`
}

// catalogFile is the layout of the scope catalog file.
type catalogFile struct {
	Actions []Action `yaml:"actions"`
}

// LoadClients reads a clients file strictly: an unknown key, a value of the
// wrong type or a rule broken by any client is a problem, and every
// problem is returned at once in a *ValidationError. The clients come back
// with their defaults applied.
func LoadClients(path string) ([]Client, error) {
	clients, ps := decodeClients(path)
	if len(ps) == 0 {
		ps = validateClients(path, clients)
	}
	if len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	return clients, nil
}

// LoadCatalog reads a scope catalog file as strictly as LoadClients. It
// checks each action on its own, so an action's max_ttl is not yet
// compared with tokens.max_ttl: Load does that.
func LoadCatalog(path string) ([]Action, error) {
	actions, ps := decodeCatalog(path)
	if len(ps) == 0 {
		ps = validateActions(path, actions)
	}
	if len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	return actions, nil
}

func decodeClients(path string) ([]Client, []Problem) {
	var f clientsFile
	ps := decodeStrict(path, "clients", &f)
	for i := range f.Clients {
		f.Clients[i].applyDefaults()
	}
	return f.Clients, ps
}

func decodeCatalog(path string) ([]Action, []Problem) {
	var f catalogFile
	ps := decodeStrict(path, "actions", &f)
	for i := range f.Actions {
		f.Actions[i].applyDefaults()
	}
	return f.Actions, ps
}

// fileKey names the key of the main file that points to each file.
var fileKey = map[string]string{"clients": "clients_file", "actions": "catalog_file"}

// decodeStrict decodes the YAML file at path into out with unknown keys
// rejected. It turns each decoder error into a problem with the key path
// of its line, and an unreadable file or a syntax error into one problem
// for the whole file.
func decodeStrict(path, what string, out any) []Problem {
	data, err := os.ReadFile(path)
	if err != nil {
		return []Problem{{File: path, Expected: "a readable " + what + " file: " + readError(err) +
			"; check " + fileKey[what] + " in the config file"}}
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(out)
	if err == nil || errors.Is(err, io.EOF) {
		return nil // an empty file holds no entries
	}

	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return []Problem{{File: path, Expected: "valid YAML: " + err.Error()}}
	}

	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it parsed above, so it parses again
	keys := keysByLine(&root)
	ps := make([]Problem, 0, len(typeErr.Errors))
	for _, msg := range typeErr.Errors {
		ps = append(ps, yamlProblem(path, msg, keys))
	}
	return ps
}

// readError words a failed read without repeating the path, which the
// problem already names.
func readError(err error) string {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err.Error()
	}
	return err.Error()
}

var (
	yamlLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknown   = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	yamlWrongType = regexp.MustCompile("^cannot unmarshal !!(\\w+) ?(`.*`)? into (\\S+)$")
	yamlDuration  = regexp.MustCompile(`^invalid duration "(.*)": (.*)$`)
)

// yamlTypes maps the type names in yaml.v3 messages to the types, so an
// unknown-key problem can list the keys that are known.
var yamlTypes = map[string]reflect.Type{
	"config.clientsFile":          reflect.TypeOf(clientsFile{}),
	"config.catalogFile":          reflect.TypeOf(catalogFile{}),
	"config.Client":               reflect.TypeOf(Client{}),
	"config.Action":               reflect.TypeOf(Action{}),
	"config.AuthorizationDetails": reflect.TypeOf(AuthorizationDetails{}),
	"config.DetailField":          reflect.TypeOf(DetailField{}),
}

// yamlProblem turns one yaml.v3 type error message into a problem. The
// messages have the form "line N: field X not found in type T" or
// "line N: cannot unmarshal !!kind `value` into T" in yaml.v3 v3.0.1.
func yamlProblem(path, msg string, keys map[int]string) Problem {
	p := Problem{File: path, Expected: msg}
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return p
	}
	line, _ := strconv.Atoi(m[1])
	p.Key = keys[line]
	if p.Key == "" {
		p.Key = "line " + m[1]
	}
	p.Expected = m[2] + " (line " + m[1] + ")"

	if u := yamlUnknown.FindStringSubmatch(m[2]); u != nil {
		p.Expected = fmt.Sprintf("%s (line %s), one of: %s", knownKey, m[1], strings.Join(yamlKeys(yamlTypes[u[2]]), ", "))
		return p
	}
	if d := yamlDuration.FindStringSubmatch(m[2]); d != nil {
		p.Value = d[1]
		p.Expected = fmt.Sprintf("%s (line %s)", d[2], m[1])
		return p
	}
	if w := yamlWrongType.FindStringSubmatch(m[2]); w != nil {
		switch {
		case isSecretKey(p.Key):
			p.Value = redacted
		default:
			p.Value = strings.Trim(w[2], "`")
		}
		p.Expected = fmt.Sprintf("a value of type %s, not a YAML %s (line %s)", yamlTypeName(w[3]), w[1], m[1])
	}
	return p
}

// yamlTypeName names a Go type from a yaml.v3 message in YAML words.
func yamlTypeName(goType string) string {
	switch {
	case goType == "string" || goType == "config.Secret":
		return "string"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "[]"):
		return "list of " + yamlTypeName(strings.TrimPrefix(goType, "[]"))
	case strings.HasPrefix(goType, "config."):
		return "mapping"
	}
	return goType
}

// yamlKeys lists the yaml keys of a struct type.
func yamlKeys(t reflect.Type) []string {
	if t == nil {
		return nil
	}
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// keysByLine maps each line of a YAML document to the key path written on
// it, such as "clients[1].client_secret". A line with a list item but no
// key maps to the item, such as "actions[0].audiences[1]". Where a line
// holds several keys (a flow mapping), the first one is kept.
func keysByLine(root *yaml.Node) map[int]string {
	keys := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, child := range n.Content {
				walk(child, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := joinKey(path, n.Content[i].Value)
				if _, ok := keys[n.Content[i].Line]; !ok {
					keys[n.Content[i].Line] = key
				}
				walk(n.Content[i+1], key)
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				key := fmt.Sprintf("%s[%d]", path, i)
				walk(item, key)
				if _, ok := keys[item.Line]; !ok {
					keys[item.Line] = key
				}
			}
		}
	}
	walk(root, "")
	return keys
}
