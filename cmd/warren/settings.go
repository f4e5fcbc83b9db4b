package main

import (
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"warren/web"
)

// masked replaces a secret value on the settings page.
const masked = "***"

// settingsOf flattens the effective configuration (after defaults and
// environment overrides) into the dotted keys of the YAML file, for the
// settings page, with every secret masked here, before the web layer ever
// sees it: passwords, password hashes, webhook secrets, header values and
// templates (they may carry tokens), URL credentials and queries, and the
// paths of webhook URLs (a Slack or similar webhook URL is itself the key).
func settingsOf(cfg config) []web.Setting {
	var out []web.Setting
	flattenSetting(reflect.ValueOf(cfg), "", &out)
	return out
}

func flattenSetting(v reflect.Value, key string, out *[]web.Setting) {
	add := func(value string, isMasked bool) {
		*out = append(*out, web.Setting{Key: key, Value: value, Masked: isMasked})
	}
	if v.Type() == durationType {
		add(duration(v.Int()).D().String(), false)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			add("(not set)", false)
			return
		}
		flattenSetting(v.Elem(), key, out)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			flattenSetting(v.Field(i), joinKey(key, tag), out)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			add("(none)", false)
			return
		}
		for i := 0; i < v.Len(); i++ {
			flattenSetting(v.Index(i), fmt.Sprintf("%s[%d]", key, i), out)
		}
	case reflect.Map:
		if v.Len() == 0 {
			add("(none)", false)
			return
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := fmt.Sprintf("%s[%q]", key, k)
			if lastSegment(key) == "headers" {
				// Header values are where tokens go (Authorization, API keys).
				*out = append(*out, web.Setting{Key: sub, Value: masked, Masked: true})
				continue
			}
			flattenSetting(v.MapIndex(reflect.ValueOf(k)), sub, out)
		}
	case reflect.String:
		value, isMasked := maskSetting(key, v.String())
		add(value, isMasked)
	case reflect.Bool:
		add(strconv.FormatBool(v.Bool()), false)
	case reflect.Int, reflect.Int64:
		add(strconv.FormatInt(v.Int(), 10), false)
	case reflect.Float64:
		add(strconv.FormatFloat(v.Float(), 'g', -1, 64), false)
	default:
		add("(unsupported)", false)
	}
}

// lastSegment is the last field name of a dotted key ("headers" of
// alerts.webhooks[0].headers).
func lastSegment(key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		key = key[i+1:]
	}
	if i := strings.Index(key, "["); i >= 0 {
		key = key[:i]
	}
	return key
}

// maskSetting masks a string setting by what its key says it is, and any
// URL by its parts.
func maskSetting(key, value string) (string, bool) {
	if value == "" {
		return "", false
	}
	name := lastSegment(key)
	for _, secret := range []string{"password", "secret", "token", "hash", "template"} {
		if strings.Contains(name, secret) {
			return masked, true
		}
	}
	if !strings.Contains(value, "://") {
		return value, false
	}
	u, err := url.Parse(value)
	if err != nil || u.Opaque != "" {
		return masked, true // unparseable: it could hold anything
	}
	hidden := false
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	switch {
	case u.User != nil && strings.HasPrefix(key, "alerts.webhooks["):
		// As in the logs and the delivery log (alerts.RedactURL): a
		// webhook's user name may be a token too.
		b.WriteString(masked + "@")
		hidden = true
	case u.User != nil:
		b.WriteString(u.User.Username())
		if _, has := u.User.Password(); has {
			b.WriteString(":" + masked)
			hidden = true
		}
		b.WriteString("@")
	}
	b.WriteString(u.Host)
	switch {
	case u.Path == "" || u.Path == "/":
		b.WriteString(u.EscapedPath())
	case strings.HasPrefix(key, "alerts.webhooks["):
		// A webhook URL's path is often the credential itself (Slack,
		// Teams, Discord): only the host is shown.
		b.WriteString("/" + masked)
		hidden = true
	default:
		b.WriteString(u.EscapedPath())
	}
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteString("?" + masked)
		hidden = true
	}
	if u.Fragment != "" {
		b.WriteString("#" + masked)
		hidden = true
	}
	return b.String(), hidden
}
