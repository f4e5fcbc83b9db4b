package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeNode walks a YAML node and the Go value together, so every unknown
// key, duplicate key and badly typed value is reported with its full path
// (consumers[0].handler.duration) instead of a Go type name. lines, when not
// nil, receives the line of every key the file gives, for later checks (an
// explicit 0, a value out of range) to name it.
func decodeNode(n *yaml.Node, dst any, path string, lines map[string]int) error {
	return decodeValue(n, reflect.ValueOf(dst).Elem(), path, lines)
}

var durationType = reflect.TypeOf(duration(0))

func decodeValue(n *yaml.Node, v reflect.Value, path string, lines map[string]int) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if lines != nil && path != "" {
		lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // "key:" with no value keeps the default
	}
	fail := func(format string, args ...any) error {
		return &keyError{Key: path, Line: n.Line, Reason: fmt.Sprintf(format, args...)}
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode {
			return fail("want a duration such as 5s or 1m30s")
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			return fail("want a duration such as 5s or 1m30s, got %q", n.Value)
		}
		if d < 0 {
			return fail("must not be negative, got %q", n.Value)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeValue(n, v.Elem(), path, lines)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping of keys")
		}
		fields := map[string]int{}
		var names []string
		for i := 0; i < v.NumField(); i++ {
			tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" {
				fields[tag] = i
				names = append(names, tag)
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinKey(path, k.Value)
			idx, ok := fields[k.Value]
			if !ok {
				return &keyError{Key: key, Line: k.Line, Reason: "unknown key (known here: " + strings.Join(names, ", ") + ")"}
			}
			if seen[k.Value] {
				return &keyError{Key: key, Line: k.Line, Reason: "given twice"}
			}
			seen[k.Value] = true
			if err := decodeValue(val, v.Field(idx), key, lines); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fail("want a list")
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := decodeValue(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i), lines); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping")
		}
		out := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := fmt.Sprintf("%s[%q]", path, k.Value)
			if out.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				return &keyError{Key: key, Line: k.Line, Reason: "given twice"}
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := decodeValue(val, elem, key, lines); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
		v.Set(out)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fail("want a single value, got a %s", kindName(n.Kind))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			return fail("want true or false, got %q", n.Value)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
		if err != nil || (v.Kind() == reflect.Int && int64(int(i)) != i) {
			return fail("want a whole number, got %q", n.Value)
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			return fail("want a number, got %q", n.Value)
		}
		v.SetFloat(f)
	default:
		return fail("unsupported value")
	}
	return nil
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}
