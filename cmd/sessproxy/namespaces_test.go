package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sessproxy/sessproxy/store"
)

// TestNamespacesFromBlocksAndPresets: [[namespace]] blocks start from the
// defaults and their preset, their keys override it; -preset given again
// adds a namespace named after it; the command options carry each one.
func TestNamespacesFromBlocksAndPresets(t *testing.T) {
	file := writeConfig(t, `[session]
preset = "connect-redis"
[[namespace]]
preset = "phpredis"
[namespace.ttl]
default = "1h"
[[namespace]]
name = "admin"
prefix = "sess:admin:"
owner_field = "user"
[namespace.tombstone]
grace = "1m"
format = "string"
`)
	cfg, err := configFromFlags("t", []string{"-config", file, "-preset", "connect-redis", "-preset", "django-redis"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Namespaces) != 3 {
		t.Fatalf("%d namespaces, want the file's 2 and -preset django-redis", len(cfg.Namespaces))
	}
	php, admin, django := cfg.Namespaces[0], cfg.Namespaces[1], cfg.Namespaces[2]
	if php.Name != "phpredis" || php.Prefix != "PHPREDIS_SESSION:" || php.Codec.Format != "raw" || php.Tombstone.OnWrite != "ignore" ||
		time.Duration(php.TTL.Default) != time.Hour || time.Duration(php.TTL.Max) != 30*24*time.Hour {
		t.Errorf("phpredis block: %+v", php)
	}
	if admin.Codec.Format != "json" || admin.OwnerField != "user" || time.Duration(admin.Tombstone.Grace) != time.Minute || !admin.Tombstone.Enabled {
		t.Errorf("admin block (defaults under its keys): %+v", admin)
	}
	if django.Name != "django-redis" || cfg.Session.OutsidePrefix != "passthrough" {
		t.Errorf("-preset django-redis: namespace %q, outside_prefix %q (its cache shares the server)", django.Name, cfg.Session.OutsidePrefix)
	}
	opts, err := cfg.commandOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Prefix != "sess:" || opts.DefaultAlias != "connect-redis" || len(opts.Namespaces) != 3 ||
		opts.Namespaces[0].Policy.Default != time.Hour || opts.Namespaces[1].Prefix != "sess:admin:" {
		t.Errorf("command options: default %q alias %q, namespaces %+v", opts.Prefix, opts.DefaultAlias, opts.Namespaces)
	}
	if opts.TombstoneFormat != store.TombstoneTyped || opts.Namespaces[0].TombstoneFormat != store.TombstoneTyped ||
		opts.Namespaces[1].TombstoneFormat != store.TombstoneString {
		t.Errorf("tombstone formats: default %q, phpredis %q, admin %q (its block's)", opts.TombstoneFormat,
			opts.Namespaces[0].TombstoneFormat, opts.Namespaces[1].TombstoneFormat)
	}
}

// TestNamespaceErrorsNameTheirKeys: every namespace error names its block.
func TestNamespaceErrorsNameTheirKeys(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"no name", "[[namespace]]\nprefix = \"x:\"\n", "invalid namespace[0].name: required"},
		{"default name", "[[namespace]]\nname = \"default\"\nprefix = \"x:\"\n", `invalid namespace[0].name: "default" is taken`},
		{"same prefix", "[[namespace]]\nname = \"a\"\nprefix = \"sess:\"\n", `invalid namespace[0].prefix: "sess:" is also the prefix of namespace "default"`},
		{"bad ttl", "[[namespace]]\nname = \"a\"\nprefix = \"a:\"\n[namespace.ttl]\nmin = \"0s\"\n", "invalid namespace[0].ttl.min: must be > 0"},
		{"bad codec", "[[namespace]]\nname = \"a\"\nprefix = \"a:\"\n[namespace.codec]\nformat = \"xml\"\n", "invalid namespace[0].codec.format"},
		{"bad tombstone format", "[[namespace]]\nname = \"a\"\nprefix = \"a:\"\n[namespace.tombstone]\nformat = \"hash\"\n", `invalid namespace[0].tombstone.format: must be "typed" or "string"`},
		{"unknown key", "[[namespace]]\nname = \"a\"\nprefix = \"a:\"\ncolour = \"red\"\n", "unknown key namespace.colour"},
		{"unknown preset", "[[namespace]]\npreset = \"rails\"\n", `namespace[0]: unknown preset "rails"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configFromFlags("t", []string{"-config", writeConfig(t, tt.body)}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v, want an error containing %q", err, tt.want)
			}
		})
	}
}
