// Package glob matches Redis's glob patterns, as KEYS, SCAN MATCH and
// COMMAND LIST FILTERBY PATTERN take them, with the verdicts of Redis 7's
// stringmatchlen (src/util.c) in O(len(pattern)·len(s)) time.
//
// It replaces tidwall/match, which tries every place in s for every '*'
// recursively: k stars against an n-byte key cost about C(n, k) steps, so
// `KEYS *a*a*a*a*a*a*a*a*a*a*a*a*b*` with one 32-byte session id took 18 s
// (Redis's own CVE-2022-36021). Its latest release (v1.2.0) matches the
// same way, and its syntax is not Redis's either: no [classes], and '?'
// takes a UTF-8 character where Redis takes a byte.
package glob

// Match reports whether s matches pattern, as Redis's KEYS and SCAN MATCH
// answer: '*' any bytes, '?' one byte, '[abc]', '[^abc]', '[a-z]' one
// byte of a class, '\x' the byte x, anything else itself.
func Match(pattern, s string) bool { return match(pattern, s, false) }

// MatchFold is Match ignoring ASCII case, as Redis's nocase matching
// (COMMAND LIST FILTERBY PATTERN) does.
func MatchFold(pattern, s string) bool { return match(pattern, s, true) }

// match needs one backtrack point, the last '*', because every other
// token matches exactly one byte: when a later '*' is reached, the
// earliest place its segment matched is as good as any other, so an
// earlier '*' never has to take more bytes.
func match(pattern, s string, fold bool) bool {
	if s == "" {
		return pattern == "" // Redis's loop never lets '*' match an empty string
	}
	p, i := 0, 0
	star, starAt := -1, 0 // the pattern after the last '*', and where in s it was tried
	for i < len(s) {
		if p < len(pattern) && pattern[p] == '*' {
			for p < len(pattern) && pattern[p] == '*' {
				p++
			}
			if p == len(pattern) {
				return true
			}
			star, starAt = p, i
			continue
		}
		if p < len(pattern) {
			if n, ok := token(pattern[p:], s[i], fold); ok {
				p += n
				i++
				continue
			}
		}
		if star < 0 {
			return false
		}
		starAt++
		p, i = star, starAt
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// token matches byte c against the token (not '*') that starts pat and
// returns the token's length in pat.
func token(pat string, c byte, fold bool) (int, bool) {
	switch pat[0] {
	case '?':
		return 1, true
	case '[':
		return class(pat, c, fold)
	case '\\':
		if len(pat) >= 2 {
			return 2, equal(pat[1], c, fold)
		}
	}
	return 1, equal(pat[0], c, fold) // a trailing '\' is itself
}

// class matches c against the class that starts pat, parsed as Redis does:
// ']' first closes an empty class, "x-y" is a range even when y is ']',
// ranges compare bytes as signed chars (x86), an escaped member ignores
// fold, and a class left open runs to the end of the pattern.
func class(pat string, c byte, fold bool) (int, bool) {
	j := 1
	negate := j < len(pat) && pat[j] == '^'
	if negate {
		j++
	}
	matched := false
	for ; j < len(pat) && pat[j] != ']'; j++ {
		rest := len(pat) - j
		switch {
		case pat[j] == '\\' && rest >= 2:
			j++
			matched = matched || pat[j] == c
		case rest >= 3 && pat[j+1] == '-':
			lo, hi, x := int8(pat[j]), int8(pat[j+2]), int8(c)
			if lo > hi {
				lo, hi = hi, lo
			}
			if fold {
				lo, hi, x = lower(lo), lower(hi), lower(x)
			}
			matched = matched || lo <= x && x <= hi
			j += 2
		default:
			matched = matched || equal(pat[j], c, fold)
		}
	}
	if j < len(pat) {
		j++ // the ']'
	}
	return j, matched != negate
}

func equal(a, b byte, fold bool) bool {
	if fold {
		return lower(int8(a)) == lower(int8(b))
	}
	return a == b
}

// lower is C's tolower in the C locale: ASCII letters only.
func lower(c int8) int8 {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
