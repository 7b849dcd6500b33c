package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestPresetsLoadAndValidate: every preset, given alone, is a valid
// configuration with its framework's prefix and codec.
func TestPresetsLoadAndValidate(t *testing.T) {
	want := map[string]struct{ prefix, codec, onWrite string }{
		"connect-redis":         {"sess:", "json", "error"},
		"phpredis":              {"PHPREDIS_SESSION:", "raw", "ignore"},
		"redis-rack":            {"rack:session:", "raw", "ignore"},
		"django-redis":          {":1:django.contrib.sessions.cache", "raw", "ignore"},
		"flask-session":         {"session:", "raw", "ignore"},
		"gorilla-redistore":     {"session_", "raw", "ignore"},
		"connect-redis-session": {"sessions:", "json", "error"},
		"alt-session":           {"sess:", "json", "error"},
	}
	if len(want) != len(presets) {
		t.Fatalf("%d presets, %d expected here", len(presets), len(want))
	}
	for _, p := range presets {
		cfg, err := configFromFlags("t", []string{"-preset", p.name}, nil)
		if err != nil {
			t.Errorf("-preset %s: %v", p.name, err)
			continue
		}
		w := want[p.name]
		if cfg.Session.Prefix != w.prefix || cfg.Codec.Format != w.codec || cfg.Tombstone.OnWrite != w.onWrite || cfg.Session.Preset != p.name {
			t.Errorf("-preset %s: prefix %q codec %q on_write %q preset %q, want %+v", p.name,
				cfg.Session.Prefix, cfg.Codec.Format, cfg.Tombstone.OnWrite, cfg.Session.Preset, w)
		}
	}
	cfg, _ := configFromFlags("t", []string{"-preset", "alt-session"}, nil)
	if time.Duration(cfg.TTL.Idle) != 5*time.Minute {
		t.Errorf("alt-session: ttl.idle %v, want its documented 300 s", cfg.TTL.Idle)
	}
	cfg, _ = configFromFlags("t", []string{"-preset", "flask-session"}, nil)
	if time.Duration(cfg.TTL.Max) != 31*24*time.Hour {
		t.Errorf("flask-session: ttl.max %v, want Flask's PERMANENT_SESSION_LIFETIME, 31 days", time.Duration(cfg.TTL.Max))
	}
	cfg, _ = configFromFlags("t", []string{"-preset", "django-redis"}, nil)
	if cfg.Session.OutsidePrefix != "passthrough" {
		t.Errorf("django-redis: outside_prefix %q, want passthrough (the rest of the cache)", cfg.Session.OutsidePrefix)
	}
}

// TestPresetUnderFileAndFlags: the file's keys override the preset, the
// flags override the file; a preset named twice differently, twice on the
// command line, or unknown is an error that says so.
func TestPresetUnderFileAndFlags(t *testing.T) {
	file := writeConfig(t, "[session]\npreset = \"phpredis\"\n[tombstone]\non_write = \"error\"\n")
	cfg, err := configFromFlags("t", []string{"-config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Session.Prefix != "PHPREDIS_SESSION:" || cfg.Codec.Format != "raw" || cfg.Tombstone.OnWrite != "error" {
		t.Errorf("file's preset with an override: prefix %q codec %q on_write %q", cfg.Session.Prefix, cfg.Codec.Format, cfg.Tombstone.OnWrite)
	}
	cfg, err = configFromFlags("t", []string{"-config", file, "-preset", "phpredis", "-codec", "json"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Codec.Format != "json" {
		t.Errorf("-codec json: codec.format %q", cfg.Codec.Format)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"file and flag disagree", []string{"-config", file, "-preset", "redis-rack"}, `session.preset = "phpredis", but -preset redis-rack`},
		{"two presets on one prefix", []string{"-preset", "connect-redis", "-preset", "alt-session"}, `invalid namespace[0].prefix: "sess:" is also the prefix of namespace "default"`},
		{"unknown", []string{"-preset", "rails"}, `unknown preset "rails" (one of: alt-session, connect-redis,`},
		{"bad codec", []string{"-codec", "xml"}, "invalid codec.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configFromFlags("t", tt.args, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%q: %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestPresetsCommandPrintsEach: `sessproxy presets` prints every preset as
// TOML a config file could hold.
func TestPresetsCommandPrintsEach(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"presets"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range presets {
		if !strings.Contains(out.String(), "# -preset "+p.name+": ") {
			t.Errorf("sessproxy presets: no %s in\n%s", p.name, out.String())
		}
	}
	if !strings.Contains(out.String(), "prefix = \"PHPREDIS_SESSION:\"\n") {
		t.Errorf("sessproxy presets does not print the settings:\n%s", out.String())
	}
}
