package v1beta1

import (
	stdjson "encoding/json"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/json"
)

var (
	unmarshalerType = reflect.TypeFor[stdjson.Unmarshaler]()
	quantityType    = reflect.TypeFor[resource.Quantity]()
)

// findBadValue walks raw alongside the Go type of target and returns a
// field error for the first value (object keys in sorted order) that does not
// decode into its Go type, or nil if every value decodes. Unknown and
// duplicate fields are not its concern: the strict pass reports those.
func findBadValue(raw []byte, target any) error {
	if err := badValueAt(raw, reflect.TypeOf(target), nil); err != nil {
		return err
	}
	return nil
}

func badValueAt(raw []byte, t reflect.Type, path *field.Path) *field.Error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if jsonKind(raw) == "null" {
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := json.UnmarshalCaseSensitivePreserveInts(raw, reflect.New(t).Interface()); err != nil {
			detail := err.Error()
			if t == quantityType {
				// The parser's own message is a regular expression.
				detail = "must be a quantity such as 512Mi or 10Gi"
			}
			return field.Invalid(path, stdjson.RawMessage(raw), detail)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var members map[string]stdjson.RawMessage
		if err := json.UnmarshalCaseSensitivePreserveInts(raw, &members); err != nil {
			return wrongType(raw, path, "object")
		}
		for _, name := range sortedKeys(members) {
			if ft, ok := jsonFieldType(t, name); ok {
				if err := badValueAt(members[name], ft, path.Child(name)); err != nil {
					return err
				}
			}
		}
		return nil
	case reflect.Map:
		var entries map[string]stdjson.RawMessage
		if err := json.UnmarshalCaseSensitivePreserveInts(raw, &entries); err != nil {
			return wrongType(raw, path, "object")
		}
		for _, key := range sortedKeys(entries) {
			if err := badValueAt(entries[key], t.Elem(), path.Key(key)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		var items []stdjson.RawMessage
		if err := json.UnmarshalCaseSensitivePreserveInts(raw, &items); err != nil {
			return wrongType(raw, path, "array")
		}
		for i, item := range items {
			if err := badValueAt(item, t.Elem(), path.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := json.UnmarshalCaseSensitivePreserveInts(raw, reflect.New(t).Interface()); err != nil {
		return wrongType(raw, path, goKindInJSON(t.Kind()))
	}
	return nil
}

func wrongType(raw []byte, path *field.Path, want string) *field.Error {
	if path == nil {
		// The parameters themselves: field.Error would print an empty path.
		path = field.NewPath("parameters")
	}
	article := "a"
	if want == "object" || want == "array" || want == "integer" {
		article = "an"
	}
	return field.TypeInvalid(path, stdjson.RawMessage(raw), "must be "+article+" "+want)
}

// jsonKind names the JSON type of a (syntactically valid) value.
func jsonKind(raw []byte) string {
	for _, b := range raw {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			return "string"
		case '{':
			return "object"
		case '[':
			return "array"
		case 't', 'f':
			return "boolean"
		case 'n':
			return "null"
		}
		return "number"
	}
	return "empty"
}

func goKindInJSON(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	}
	return k.String()
}

// jsonFieldType finds the struct field that a JSON member name decodes into,
// looking through inlined embedded structs (metav1.TypeMeta).
func jsonFieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tagName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tagName == "-" {
			continue
		}
		if f.Anonymous && tagName == "" && f.Type.Kind() == reflect.Struct {
			if ft, ok := jsonFieldType(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if tagName == "" {
			tagName = f.Name
		}
		if tagName == name {
			return f.Type, true
		}
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
