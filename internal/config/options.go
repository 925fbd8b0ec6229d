package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Option describes one configuration key, derived from the tags of Config.
type Option struct {
	Key     string // koanf key, e.g. "log.level"
	Env     string // environment variable, e.g. "CONNHOST_LOG_LEVEL"
	Flag    string // flag name without dashes, e.g. "log-level"
	Default string // default as text; "" for none
	Help    string
	kind    reflect.Type
}

var options = collect(reflect.TypeFor[Config](), "")

// Options returns every configuration option in declaration order.
func Options() []Option { return append([]Option(nil), options...) }

func collect(t reflect.Type, prefix string) []Option {
	var out []Option
	for i := range t.NumField() {
		f := t.Field(i)
		key := prefix + f.Tag.Get("koanf")
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			out = append(out, collect(f.Type, key+".")...)
			continue
		}
		out = append(out, Option{
			Key:     key,
			Env:     EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")),
			Flag:    strings.NewReplacer(".", "-", "_", "-").Replace(key),
			Default: f.Tag.Get("default"),
			Help:    f.Tag.Get("help"),
			kind:    f.Type,
		})
	}
	return out
}

func optionByEnv(name string) (Option, bool) {
	for _, o := range options {
		if o.Env == name {
			return o, true
		}
	}
	return Option{}, false
}

func optionByFlag(name string) (Option, bool) {
	for _, o := range options {
		if o.Flag == name {
			return o, true
		}
	}
	return Option{}, false
}

func optionByKey(key string) (Option, bool) {
	for _, o := range options {
		if o.Key == key {
			return o, true
		}
	}
	return Option{}, false
}

// MarkdownTable renders the options as the Markdown table in README.md.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n")
	for _, o := range options {
		def := "`" + o.Default + "`"
		if o.Default == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `--%s` | %s | %s |\n", o.Key, o.Env, o.Flag, def, o.Help)
	}
	return b.String()
}
