package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// RegisterFlags adds --config and one flag per option to fs. With keys,
// only the options a command uses get a flag: those whose key is one of
// keys or lies under one ("limits" takes every limits.* option), so a
// command's --help lists what applies to it; the others still come from
// the file and the environment. Flag defaults are the option defaults;
// only flags set on the command line override the lower layers.
func RegisterFlags(fs *pflag.FlagSet, keys ...string) {
	fs.String(FlagConfigFile, "", "YAML config file (default $"+EnvConfigFile+")")
	for _, o := range options {
		if !selected(o.Key, keys) {
			continue
		}
		switch o.kind {
		case reflect.TypeFor[time.Duration]():
			d, err := time.ParseDuration(o.Default)
			must(o, err)
			fs.Duration(o.Flag, d, o.Help)
		case reflect.TypeFor[int]():
			n, err := strconv.Atoi(o.Default)
			must(o, err)
			fs.Int(o.Flag, n, o.Help)
		case reflect.TypeFor[string]():
			fs.String(o.Flag, o.Default, o.Help)
		case reflect.TypeFor[bool]():
			b, err := strconv.ParseBool(o.Default)
			must(o, err)
			fs.Bool(o.Flag, b, o.Help)
		case reflect.TypeFor[[]string]():
			fs.StringSlice(o.Flag, splitList(o.Default), o.Help)
		default:
			panic(fmt.Sprintf("config: option %s: unsupported type %v", o.Key, o.kind))
		}
	}
}

// selected reports whether key is one of keys or under one; no keys
// selects every key.
func selected(key string, keys []string) bool {
	if len(keys) == 0 {
		return true
	}
	for _, k := range keys {
		if key == k || strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

func must(o Option, err error) {
	if err != nil {
		panic(fmt.Sprintf("config: option %s: bad default %q: %v", o.Key, o.Default, err))
	}
}

// LoadOptions adjust Load for commands that do not work on a data
// directory.
type LoadOptions struct {
	// CacheDir, when set, gives what an empty cache_dir means instead of
	// data_dir/cache/wazero; it is called only then, and its error is
	// cache_dir's. `connhost run` caches in the user's cache directory
	// rather than under ./data.
	CacheDir func() (string, error)
}

// Load builds the configuration from defaults, then the YAML file named by
// --config or CONNHOST_CONFIG, then the CONNHOST_ variables in environ
// (os.Environ() in production), then the flags of fs set on the command line
// (fs must be parsed and carry RegisterFlags; nil means no flags). It
// validates the result; every error names the key and where its value came
// from.
func Load(fs *pflag.FlagSet, environ []string) (*Config, error) {
	return LoadWith(fs, environ, LoadOptions{})
}

// LoadWith is Load adjusted by opts.
func LoadWith(fs *pflag.FlagSet, environ []string, opts LoadOptions) (*Config, error) {
	k := koanf.New(".")
	src := map[string]string{}
	for _, o := range options {
		if err := k.Set(o.Key, o.Default); err != nil {
			return nil, fmt.Errorf("config: default %s: %w", o.Key, err)
		}
		src[o.Key] = "default"
	}

	path := envValue(environ, EnvConfigFile)
	if fs != nil {
		if f := fs.Lookup(FlagConfigFile); f != nil && f.Changed {
			path = f.Value.String()
		}
	}
	if path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
		var unknown []string
		for _, key := range fk.Keys() {
			if _, ok := optionByKey(key); !ok {
				unknown = append(unknown, key)
			}
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("config file %s: unknown keys: %s", path, strings.Join(unknown, ", "))
		}
		if err := merge(k, fk, src, "config file "+path); err != nil {
			return nil, err
		}
	}

	var unknownEnv []string
	ek := koanf.New(".")
	envNames := map[string]string{}
	err := ek.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			if reservedEnv(name) {
				return "", nil
			}
			o, ok := optionByEnv(name)
			if !ok {
				unknownEnv = append(unknownEnv, name)
				return "", nil
			}
			envNames[o.Key] = name
			return o.Key, v
		},
	}), nil)
	if err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	if len(unknownEnv) > 0 {
		slices.Sort(unknownEnv)
		return nil, fmt.Errorf("config: unknown environment variables: %s (known: see connhost --help)", strings.Join(unknownEnv, ", "))
	}
	for _, key := range ek.Keys() {
		src[key] = "env " + envNames[key]
	}
	if err := k.Merge(ek); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}

	if fs != nil {
		fk := koanf.New(".")
		err := fk.Load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
			o, ok := optionByFlag(f.Name)
			if !ok || !f.Changed {
				return "", nil
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				return o.Key, sv.GetSlice()
			}
			return o.Key, f.Value.String()
		}), nil)
		if err != nil {
			return nil, fmt.Errorf("config: flags: %w", err)
		}
		for _, key := range fk.Keys() {
			o, _ := optionByKey(key)
			src[key] = "flag --" + o.Flag
		}
		if err := k.Merge(fk); err != nil {
			return nil, fmt.Errorf("config: flags: %w", err)
		}
	}

	c, err := decode(k, src)
	if err != nil {
		return nil, err
	}
	switch {
	case c.CacheDir != "":
	case opts.CacheDir != nil:
		dir, err := opts.CacheDir()
		if err != nil {
			return nil, fmt.Errorf("config: cache_dir: %w", err)
		}
		c.CacheDir = dir
		src["cache_dir"] = "the user cache directory"
	default:
		c.CacheDir = filepath.Join(c.DataDir, "cache", "wazero")
		src["cache_dir"] = "derived from data_dir"
	}
	if c.Secrets.KeyFile == "" {
		c.Secrets.KeyFile = filepath.Join(c.DataDir, "secret.key")
		src["secrets.key_file"] = "derived from data_dir"
	}
	if c.Engines.StoreDir == "" {
		c.Engines.StoreDir = filepath.Join(c.DataDir, "engines")
		src["engines.store_dir"] = "derived from data_dir"
	}
	var errs []error
	for _, p := range c.problems() {
		errs = append(errs, fmt.Errorf("config: %s: %s (set by %s)", p.key, p.msg, src[p.key]))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func merge(k, layer *koanf.Koanf, src map[string]string, from string) error {
	for _, key := range layer.Keys() {
		src[key] = from
	}
	if err := k.Merge(layer); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return nil
}

// decode converts each value to its option's type itself, rather than
// leaving it to mapstructure, so a bad value gets an error naming its key
// and source.
func decode(k *koanf.Koanf, src map[string]string) (*Config, error) {
	typed := koanf.New(".")
	var errs []error
	for _, o := range options {
		v, err := coerce(o, k.Get(o.Key))
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w (set by %s)", o.Key, err, src[o.Key]))
			continue
		}
		if err := typed.Set(o.Key, v); err != nil {
			return nil, fmt.Errorf("config: %s: %w", o.Key, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var c Config
	if err := typed.Unmarshal("", &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

func coerce(o Option, v any) (any, error) {
	s := fmt.Sprint(v)
	switch o.kind {
	case reflect.TypeFor[time.Duration]():
		if d, ok := v.(time.Duration); ok {
			return d, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (want e.g. 30s, 2m)", s)
		}
		return d, nil
	case reflect.TypeFor[int]():
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return n, nil
	case reflect.TypeFor[string]():
		if _, ok := v.(string); !ok && v != nil {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		return s, nil
	case reflect.TypeFor[bool]():
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean (want true or false)", s)
		}
		return b, nil
	case reflect.TypeFor[[]string]():
		return stringList(v)
	}
	return nil, fmt.Errorf("unsupported type %v", o.kind)
}

// stringList takes a list option from YAML (a sequence), a flag (a
// slice) or a default or environment variable (comma-separated text).
func stringList(v any) ([]string, error) {
	switch l := v.(type) {
	case nil:
		return []string{}, nil
	case string:
		return splitList(l), nil
	case []string:
		return l, nil
	case []any:
		out := make([]string, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("item %d: want a string, got %T", i, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, got %T", v)
}

// splitList splits comma-separated text, dropping empty items.
func splitList(s string) []string {
	out := []string{}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// reservedEnv reports whether a CONNHOST_ variable is not an option but
// read by someone else: the config file name, the secrets key, the params
// of `connhost run`, and the variables cobra's shell completion reads
// (<PROGRAM>_ACTIVE_HELP, <PROGRAM>_COMPLETION_DESCRIPTIONS). They are
// not refused as unknown options, so that one exported in a shell does not
// break every other command.
func reservedEnv(name string) bool {
	switch name {
	case EnvConfigFile, EnvSecretKey, EnvPrefix + "ACTIVE_HELP", EnvPrefix + "COMPLETION_DESCRIPTIONS":
		return true
	}
	return strings.HasPrefix(name, EnvParamPrefix)
}

func envValue(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}
