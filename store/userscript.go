package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// UserScript is a client's script as the proxy runs it upstream (wrapped in
// the session policy by the commands package). It is cached on every
// master like the proxy's own scripts, but loaded on demand: the first
// EVALSHA of it that meets NOSCRIPT (a new script, or a node that restarted
// or was failed over) loads it everywhere and goes again (sender.recover).
type UserScript struct {
	sc     *redis.Script
	source string
}

// NewUserScript returns the upstream script of source.
func NewUserScript(source string) *UserScript {
	return &UserScript{sc: redis.NewScript(source), source: source}
}

// Hash is the SHA-1 Redis knows the script by.
func (u *UserScript) Hash() string { return u.sc.Hash() }

// Source is the script text sent upstream.
func (u *UserScript) Source() string { return u.source }

// Eval queues EVALSHA (EVALSHA_RO when readOnly) of u with keys and args,
// relayed as Forward's result is. A script that is not cached upstream is
// loaded and sent again. Its reply is read raw against the batch's room
// (SetRoom), as HashReadReply's: Redis builds it from a few bytes of
// script, so read whole one EVAL of `local t={} for i=1,4000000 do
// t[i]='ab' end return t` (a 52-byte script) grew the proxy by 328 MiB,
// and a reply may announce 33 million elements (maxReplyItemBytes).
func (b *Batch) Eval(u *UserScript, readOnly bool, keys []string, args [][]byte) ForwardResult {
	name := "evalsha"
	if readOnly {
		name = "evalsha_ro"
	}
	call := make([]interface{}, 0, 3+len(keys)+len(args))
	call = append(call, name, u.Hash(), len(keys))
	for _, k := range keys {
		call = append(call, k)
	}
	for _, a := range args {
		call = append(call, a)
	}
	raw := &rawValue{scan: valueScanner{room: b.room}}
	raw.RawWriteToCmd = *redis.NewRawWriteToCmd(context.Background(), &raw.scan, call...)
	b.addMulti(raw, readOnly, keys).user = u
	return ForwardResult{raw: raw}
}

// loadUserScripts loads users on every master.
// LoadUserScript loads u on every master ahead of its first EVALSHA.
func (s *Store) LoadUserScript(ctx context.Context, u *UserScript) error {
	return s.loadUserScripts(ctx, []*UserScript{u})
}

func (s *Store) loadUserScripts(ctx context.Context, users []*UserScript) error {
	seen := make(map[*UserScript]bool)
	for _, u := range users {
		if seen[u] {
			continue
		}
		seen[u] = true
		err := s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			if err := u.sc.Load(ctx, c).Err(); err != nil {
				return fmt.Errorf("load script on %s: %w", s.nodeName(c), err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
