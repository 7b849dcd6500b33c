package glob

import (
	"context"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessproxy/sessproxy/integration/redistest"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", false}, // Redis: '*' never matches an empty string
		{"a", "", false},
		{"*", "anything", true},
		{"**", "a", true},
		{"a*", "a", true},
		{"a**", "a", true},
		{"*a", "a", true},
		{"a*b", "ab", true},
		{"a*b", "axxb", true},
		{"a*b", "axxbc", false},
		{"a*b*c", "abbbcbc", true},
		{"*a*a*a*b*", strings.Repeat("a", 64), false},
		{"?", "a", true},
		{"?", "", false},
		{"?", "ab", false},
		{"??", "\xc3\xa9", true}, // one byte each, not one character
		{"?", "\xc3\xa9", false},
		{"sess:*", "sess:abc", true},
		{"sess:*", "sesss", false},
		{"[abc]", "b", true},
		{"[abc]", "d", false},
		{"[^abc]", "d", true},
		{"[^abc]", "a", false},
		{"[!abc]", "!", true}, // '!' does not negate in Redis
		{"[!abc]", "d", false},
		{"[a-c]", "b", true},
		{"[a-c]", "d", false},
		{"[c-a]", "b", true}, // a reversed range is swapped
		{"[^a-c]x", "dx", true},
		{"[a-]", "_", true}, // a range from ']' to 'a' ...
		{"[a-]", "b", false},
		{"[a-]", "-", false},
		{"[a-]]", "]", true}, // ... so the next ']' closes
		{"[]", "]", false},   // ']' first closes an empty class
		{"[]]", "]", false},
		{"[]]", "]]", false},
		{"[^]", "x", true},
		{"[\\]]", "]", true},
		{"[\\-]", "-", true},
		{"[\\", "\\", true}, // an open class runs to the end
		{"[ab", "b", true},
		{"[ab", "c", false},
		{"[ab", "ab", false},
		{"[", "[", false},
		{"[^", "x", true},
		{"x[", "x", false},
		{"\\*", "*", true},
		{"\\*", "a", false},
		{"\\?", "?", true},
		{"\\[a]", "[a]", true},
		{"\\a", "a", true},
		{"a\\", "a\\", true}, // a trailing '\' is itself
		{"a\\", "a", false},
		{"*\\", "xx\\", true},
		{"[\x80-\xff]", "\x90", true},
		{"[a-\xff]", "\x90", false}, // Redis compares signed chars: -1..97
		{"[a-\xff]", "\xff", true},
		{"[a-\xff]", "0", true},
		{"[a-\xff]", "b", false},
		{"A", "a", false},
		{"[A-Z]", "q", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
		if got := redisMatch(tt.pattern, tt.s, false); got != tt.want {
			t.Errorf("redisMatch(%q, %q) = %v, want %v: the table disagrees with Redis's code", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestMatchFold(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"SESS.*", "sess.set", true},
		{"sess.*", "SESS.SET", true},
		{"[A-C]", "b", true},
		{"[Z-a]", "z", false}, // swapped first (Z..a), then lowered (z..a): nothing
		{"[^S]*", "sess.set", false},
		{"[\\S]", "s", false}, // an escaped class member ignores case, as in Redis
		{"\\S", "s", true},
		{"\xc3\x89", "\xc3\xa9", false}, // ASCII letters only
	}
	for _, tt := range tests {
		if got := MatchFold(tt.pattern, tt.s); got != tt.want {
			t.Errorf("MatchFold(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
		if got := redisMatch(tt.pattern, tt.s, true); got != tt.want {
			t.Errorf("redisMatch(%q, %q, nocase) = %v, want %v: the table disagrees with Redis's code", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// The pattern that took tidwall/match minutes: stars that can each take
// any number of a's, and a 'b' that is never there.
func TestMatchManyStarsIsPolynomial(t *testing.T) {
	start := time.Now()
	s := strings.Repeat("a", 256)
	for k := 1; k <= 64; k++ {
		if Match(strings.Repeat("*a", k)+"*b*", s) {
			t.Fatalf("%d stars matched", k)
		}
	}
	if MatchFold(strings.Repeat("*?", 1<<16)+"*q*", "command") {
		t.Fatal("*?…*q* matched")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v", took)
	}
}

// FuzzMatch checks Match and MatchFold against a line-by-line copy of
// Redis's stringmatchlen.
func FuzzMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"*a*b?", "xaxbc"}, {"[a-c]*", "b"}, {"[^]x", "yx"}, {"[a-]]", "]"},
		{"\\", "\\"}, {"[\\", "\\"}, {"*[", "x"}, {"[Z-a]", "Z"}, {"[\x80-a]", "\xff"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		// The reference is exponential in the number of stars.
		if len(pattern) > 64 || len(s) > 64 {
			return
		}
		if got, want := Match(pattern, s), redisMatch(pattern, s, false); got != want {
			t.Errorf("Match(%q, %q) = %v, Redis says %v", pattern, s, got, want)
		}
		if got, want := MatchFold(pattern, s), redisMatch(pattern, s, true); got != want {
			t.Errorf("MatchFold(%q, %q) = %v, Redis says %v", pattern, s, got, want)
		}
	})
}

// TestMatchAgreesWithRedis asks a real redis-server: KEYS for Match, over
// keys of a small alphabet, and COMMAND LIST FILTERBY PATTERN (nocase)
// for MatchFold, over Redis's command names, with the table's patterns
// and random ones.
func TestMatchAgreesWithRedis(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()

	const alphabet = "abAZ-]^[\\*?!|.z\x80\xff"
	rnd := rand.New(rand.NewSource(1))
	random := func(max int) string {
		b := make([]byte, 1+rnd.Intn(max))
		for i := range b {
			b[i] = alphabet[rnd.Intn(len(alphabet))]
		}
		return string(b)
	}
	keys := map[string]bool{}
	for len(keys) < 300 {
		keys[random(5)] = true
	}
	var mset []interface{}
	for k := range keys {
		mset = append(mset, k, "1")
	}
	if err := rdb.MSet(ctx, mset...).Err(); err != nil {
		t.Fatal(err)
	}
	names, err := rdb.Do(ctx, "COMMAND", "LIST").StringSlice()
	if err != nil {
		t.Fatal(err)
	}

	patterns := []string{"", "*", "[", "\\", "[a-]]", "[^]*", "[Z-a]*", "[\x80-a]", "C*|*", "[C-E]?*"}
	for i := 0; i < 3000; i++ {
		patterns = append(patterns, random(7))
	}
	pipe := rdb.Pipeline()
	keysOf := make([]*redis.StringSliceCmd, len(patterns))
	namesOf := make([]*redis.StringSliceCmd, len(patterns))
	for i, p := range patterns {
		keysOf[i] = pipe.Keys(ctx, p)
		namesOf[i] = pipe.CommandList(ctx, &redis.FilterBy{Pattern: p})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, p := range patterns {
		var want []string
		for k := range keys {
			if Match(p, k) {
				want = append(want, k)
			}
		}
		if got := keysOf[i].Val(); !sameSet(got, want) {
			t.Errorf("KEYS %q: Redis %q, Match %q", p, sorted(got), sorted(want))
		}
		want = nil
		for _, name := range names {
			if MatchFold(p, name) {
				want = append(want, name)
			}
		}
		if got := namesOf[i].Val(); p != "" && !sameSet(got, want) { // go-redis sends no FILTERBY for ""
			t.Errorf("COMMAND LIST FILTERBY PATTERN %q: Redis %q, MatchFold %q", p, sorted(got), sorted(want))
		}
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func sameSet(a, b []string) bool {
	a, b = sorted(a), sorted(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// redisMatch is Redis 7.0.15's stringmatchlen (src/util.c) statement by
// statement: exponential without its CVE-2022-36021 early exit, and the
// oracle for Match. C reads the pattern's terminating NUL where Go would
// go out of range, and compares signed chars.
func redisMatch(pattern, s string, nocase bool) bool {
	skipLongerMatches := false
	return redisMatchImpl(pattern, 0, s, 0, nocase, &skipLongerMatches)
}

func redisMatchImpl(pat string, p int, str string, s int, nocase bool, skipLongerMatches *bool) bool {
	at := func(i int) int {
		if i < len(pat) {
			return int(int8(pat[i]))
		}
		return 0
	}
	sc := func() int { return int(int8(str[s])) }
	tolower := func(c int) int {
		if 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	patternLen, stringLen := len(pat)-p, len(str)-s
loop:
	for patternLen > 0 && stringLen > 0 {
		switch at(p) {
		case '*':
			for patternLen > 0 && at(p+1) == '*' {
				p++
				patternLen--
			}
			if patternLen == 1 {
				return true
			}
			for stringLen > 0 {
				if redisMatchImpl(pat, p+1, str, s, nocase, skipLongerMatches) {
					return true
				}
				if *skipLongerMatches {
					return false
				}
				s++
				stringLen--
			}
			*skipLongerMatches = true
			return false
		case '?':
			s++
			stringLen--
		case '[':
			p++
			patternLen--
			not := at(p) == '^'
			if not {
				p++
				patternLen--
			}
			match := false
			for {
				if at(p) == '\\' && patternLen >= 2 {
					p++
					patternLen--
					if at(p) == sc() {
						match = true
					}
				} else if at(p) == ']' {
					break
				} else if patternLen == 0 {
					p--
					patternLen++
					break
				} else if patternLen >= 3 && at(p+1) == '-' {
					start, end, c := at(p), at(p+2), sc()
					if start > end {
						start, end = end, start
					}
					if nocase {
						start, end, c = tolower(start), tolower(end), tolower(c)
					}
					p += 2
					patternLen -= 2
					if c >= start && c <= end {
						match = true
					}
				} else if !nocase {
					if at(p) == sc() {
						match = true
					}
				} else if tolower(at(p)) == tolower(sc()) {
					match = true
				}
				p++
				patternLen--
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s++
			stringLen--
		default:
			if at(p) == '\\' && patternLen >= 2 {
				p++
				patternLen--
			}
			if !nocase {
				if at(p) != sc() {
					return false
				}
			} else if tolower(at(p)) != tolower(sc()) {
				return false
			}
			s++
			stringLen--
		}
		p++
		patternLen--
		if stringLen == 0 {
			for at(p) == '*' {
				p++
				patternLen--
			}
			break loop
		}
	}
	return patternLen == 0 && stringLen == 0
}
