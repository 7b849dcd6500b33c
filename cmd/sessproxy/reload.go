package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/sessproxy/sessproxy/commands"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// reloader applies SIGHUP: it reads the configuration again (the file with
// the command line's flags over it, as at start) and swaps in the keys a
// running proxy can change: [ttl], server.requirepass, [[users]] and
// log.level.
type reloader struct {
	load    func() (Config, error)
	current Config // what is running
	engine  *commands.Engine
	level   zap.AtomicLevel
	log     *zap.Logger
}

// reload applies the configuration read now, or keeps the running one when
// it is invalid. Keys that need a restart keep their running values, with
// a warning naming them.
func (r *reloader) reload() {
	next, opts, level, kept, err := r.read()
	if err != nil {
		r.log.Error("reload failed, keeping the running configuration", zap.Error(err))
		return
	}
	if len(kept) > 0 {
		r.log.Warn("reload: these keys need a restart, keeping their running values", zap.Strings("keys", kept))
	}
	r.engine.Reload(opts)
	r.current = next
	// The line is written under the more verbose of the two levels, so it
	// shows when either the old or the new level shows info.
	if level < r.level.Level() {
		r.level.SetLevel(level)
	}
	r.log.Info("configuration reloaded",
		zap.Duration("ttl_default", opts.Policy.Default), zap.Duration("ttl_min", opts.Policy.Min),
		zap.Duration("ttl_max", opts.Policy.Max), zap.Duration("ttl_lock_max", opts.Policy.LockMax), zap.Int("users", len(opts.Users)),
		zap.Bool("requirepass", opts.RequirePass != ""), zap.String("log_level", level.String()))
	r.level.SetLevel(level)
}

// read loads the configuration with the restart-only keys kept at their
// running values (named in kept), and what reload applies of it.
func (r *reloader) read() (next Config, opts commands.Options, level zapcore.Level, kept []string, err error) {
	if next, err = r.load(); err != nil {
		return
	}
	next, kept = keepRestartOnly(r.current, next)
	// The kept values and the new ones must hold together (a kept
	// ttl.absolute against a new ttl.min, say).
	if err = next.validate(); err != nil {
		if len(kept) > 0 {
			err = fmt.Errorf("with the running values of %s (restart only): %w", strings.Join(kept, ", "), err)
		}
		return
	}
	if opts, err = next.commandOptions(); err != nil {
		return
	}
	level, err = parseLevel(next.Log.Level) // validate has checked it
	return
}

// keepRestartOnly returns next with every key that cannot change in a
// running proxy set back to its value in running, and the names of those
// that differed. New keys are restart-only until listed here.
func keepRestartOnly(running, next Config) (Config, []string) {
	applied := running
	applied.TTL = next.TTL
	applied.Server.RequirePass = next.Server.RequirePass
	applied.Users = next.Users
	applied.Log.Level = next.Log.Level
	// ttl.absolute switched on or off changes the codec (the creation time
	// is stored in an envelope), which needs a restart; a new value while
	// on is just policy.
	if (running.TTL.Absolute > 0) != (next.TTL.Absolute > 0) {
		applied.TTL.Absolute = running.TTL.Absolute
	}
	// A namespace's [ttl] reloads as the default's does, when the set of
	// namespaces is the same; adding or removing one needs a restart.
	if sameNamespaces(running.Namespaces, next.Namespaces) {
		applied.Namespaces = slices.Clone(running.Namespaces)
		for i := range applied.Namespaces {
			was := running.Namespaces[i].TTL.Absolute
			applied.Namespaces[i].TTL = next.Namespaces[i].TTL
			if (was > 0) != (next.Namespaces[i].TTL.Absolute > 0) {
				applied.Namespaces[i].TTL.Absolute = was
			}
		}
	}
	return applied, differingKeys("", reflect.ValueOf(running), reflect.ValueOf(next), reflect.ValueOf(applied))
}

// differingKeys names, by their TOML keys, the leaves where next differs
// from running although applied kept running's value.
func differingKeys(prefix string, running, next, applied reflect.Value) []string {
	if running.Kind() != reflect.Struct {
		if !reflect.DeepEqual(next.Interface(), running.Interface()) && reflect.DeepEqual(applied.Interface(), running.Interface()) {
			return []string{prefix}
		}
		return nil
	}
	var keys []string
	for i := range running.NumField() {
		name, _, _ := strings.Cut(running.Type().Field(i).Tag.Get("toml"), ",")
		if prefix != "" {
			name = prefix + "." + name
		}
		keys = append(keys, differingKeys(name, running.Field(i), next.Field(i), applied.Field(i))...)
	}
	return keys
}

// sameNamespaces reports whether two configurations name the same
// namespaces in the same order.
func sameNamespaces(a, b []NamespaceConfig) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}
