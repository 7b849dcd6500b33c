package commands

// A client's script is parsed by gopher-lua (wrapScript) before it goes
// upstream. Its goyacc parser keeps one stack entry (about 300 bytes, the
// stack doubling as it grows) per pending level of the grammar: 8 MiB of
// '(' held 4 GB, and a few such requests at once killed the proxy. Redis
// (Lua 5.1) refuses a chunk more than LUAI_MAXCCALLS (200) levels deep, so
// scriptNesting measures the depth first, without recursion and in
// constant memory, and wrapScript refuses a script deeper than Redis would
// compile before gopher-lua sees it.
//
// What grows the parser's stack, and so what is counted: brackets ( [ {,
// blocks (function, do, if, repeat: while and for open theirs with do),
// runs of unary operators (not, -, #) and chains of the right-associative
// .. and ^. Everything else in Lua's grammar is left-recursive or bounded
// by the number of precedence classes. Each level counted here is at least
// one level of Lua's own count (lparser.c: enterlevel in chunk and
// subexpr), which starts at 1 for the main chunk where this starts at 0,
// so a script Redis compiles is never refused: at worst a script within
// this count but over Redis's is refused by Redis itself, upstream.

// maxScriptNesting is Lua 5.1's LUAI_MAXCCALLS, Redis's bound.
const maxScriptNesting = 200

// maxScriptBytes bounds a script's text. gopher-lua's syntax tree costs up
// to about 50 times the text it was parsed from (100 times allocated, for
// a flat run of "x=1;" or "1+1+…"), however shallow. 256 KiB, far beyond
// the scripts applications send, is at most some 25 MB allocated and 50 ms
// of parsing.
const maxScriptBytes = 256 << 10

// scriptLevel is what the scan keeps of one open bracket or block: its
// depth, and the operators pending inside it.
type scriptLevel struct {
	base   int // depth of the bracket or block itself
	unary  int // unary operators waiting for their operand
	concat int // '..' of the current chain (right-associative)
	pow    int // '^' of the current chain (right-associative)
}

func (l scriptLevel) depth() int { return l.base + l.unary + l.concat + l.pow }

// What the previous token was, as far as the scan needs it.
const (
	prevOther   = iota
	prevOperand // a name, literal or closing bracket: an operator after it is binary
	prevEnd     // 'end': what follows starts a new statement, or is binary
)

// nestingScan is scriptNesting's state.
type nestingScan struct {
	stack []scriptLevel // the levels enclosing cur
	cur   scriptLevel
	prev  int
	ln    int // the line being read
	depth int // the deepest level so far
	line  int // where it was first reached
}

// note records the current depth.
func (s *nestingScan) note() {
	if d := s.cur.depth(); d > s.depth {
		s.depth, s.line = d, s.ln
	}
}

// open enters a bracket or block.
func (s *nestingScan) open() {
	s.stack = append(s.stack, s.cur)
	s.cur = scriptLevel{base: s.cur.depth() + 1}
	s.prev = prevOther
}

// close leaves one, whatever opened it (a mismatch does not compile).
func (s *nestingScan) close(prev int) {
	if n := len(s.stack); n > 0 {
		s.cur, s.stack = s.stack[n-1], s.stack[:n-1]
		s.cur.unary = 0 // what closed was their operand
	}
	s.prev = prev
}

// endChain: an expression ended, or an operator of lower precedence than
// '..' came; Lua's recursion for the pending operators returns.
func (s *nestingScan) endChain() {
	s.cur.unary, s.cur.concat, s.cur.pow = 0, 0, 0
	s.prev = prevOther
}

// operand is a name or literal. Right after another operand it starts a
// new statement: Lua has no juxtaposition but a call with a string or a
// table, which are not read here.
func (s *nestingScan) operand() {
	if s.prev != prevOther {
		s.endChain()
	}
	s.cur.unary = 0
	s.prev = prevOperand
}

// scriptNesting returns the deepest level of src, a Lua chunk, and the
// line it is first reached on. It stops as soon as the depth passes limit.
// Strings, long strings and comments are skipped as gopher-lua and Lua 5.1
// lex them; where the two disagree (an unterminated string, "--[=x") the
// script does not compile anyway.
func scriptNesting(src string, limit int) (depth, line int) {
	s := &nestingScan{ln: 1, line: 1}
	for i := 0; i < len(src) && s.depth <= limit; s.note() {
		c := src[i]
		switch {
		case c == '\n':
			s.ln++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			if n := longBracket(src, i+2); n >= 0 {
				i = skipLong(src, i+2, n, &s.ln)
			} else {
				for i < len(src) && src[i] != '\n' {
					i++
				}
			}
		case c == '"' || c == '\'' || c == '[' && longBracket(src, i) >= 0:
			if c == '[' {
				i = skipLong(src, i, longBracket(src, i), &s.ln)
			} else {
				i = skipQuoted(src, i, &s.ln)
			}
			if s.prev == prevOther {
				s.cur.unary = 0
			} // else a call with a string argument: the expression goes on
			s.prev = prevOperand
		case c == '(' || c == '{' || c == '[':
			if s.prev == prevEnd {
				s.endChain() // a new statement: a function's body cannot be called
			}
			s.open()
			i++
		case c == ')' || c == ']' || c == '}':
			s.close(prevOperand)
			i++
		case c == '.' && i+2 < len(src) && src[i+1] == '.' && src[i+2] == '.':
			s.operand()
			i += 3
		case c == '.' && i+1 < len(src) && src[i+1] == '.':
			s.cur.concat++
			s.cur.pow = 0
			s.prev = prevOther
			i += 2
		case isLuaDigit(c) || c == '.' && i+1 < len(src) && isLuaDigit(src[i+1]):
			s.operand()
			i = skipNumber(src, i)
		case isLuaNameStart(c):
			j := i + 1
			for j < len(src) && (isLuaNameStart(src[j]) || isLuaDigit(src[j])) {
				j++
			}
			s.word(src[i:j])
			i = j
		case c == '-' && s.prev != prevOther: // binary minus
			s.cur.pow = 0
			s.prev = prevOther
			i++
		case c == '-' || c == '#':
			s.cur.unary++
			s.prev = prevOther
			i++
		case c == '^':
			s.cur.pow++
			s.prev = prevOther
			i++
		case c == '+' || c == '*' || c == '/' || c == '%':
			s.cur.pow = 0
			s.prev = prevOther
			i++
		case c == '=' || c == '<' || c == '>' || c == '~' || c == ',' || c == ';':
			s.endChain()
			i++
		default: // '.', ':' and bytes no Lua accepts
			s.prev = prevOther
			i++
		}
	}
	return s.depth, s.line
}

// word reads a name or keyword.
func (s *nestingScan) word(w string) {
	switch w {
	case "not":
		s.cur.unary++
		s.prev = prevOther
	case "and", "or", "then", "else", "elseif", "while", "for", "in", "local", "return", "break", "goto":
		s.endChain()
	case "function":
		if s.prev != prevOther {
			s.endChain() // a function statement after an expression
		}
		s.open()
	case "do", "repeat", "if":
		s.endChain()
		s.open()
	case "end":
		s.close(prevEnd)
	case "until":
		s.close(prevOther)
	default: // a name, nil, true, false
		s.operand()
	}
}

// longBracket returns the level of the long bracket opening at src[i]
// ("[[" is 0, "[==[" is 2), or -1 if there is none.
func longBracket(src string, i int) int {
	if i >= len(src) || src[i] != '[' {
		return -1
	}
	n := 0
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '=':
			n++
		case '[':
			return n
		default:
			return -1
		}
	}
	return -1
}

// skipLong returns the index past the long string or comment of level n
// opening at src[i], or len(src) if it is not closed.
func skipLong(src string, i, n int, ln *int) int {
	for i += n + 2; i < len(src); i++ {
		switch src[i] {
		case '\n':
			*ln++
		case ']':
			j := i + 1
			for j < len(src) && src[j] == '=' {
				j++
			}
			if j-i-1 == n && j < len(src) && src[j] == ']' {
				return j + 1
			}
			i = j - 1 // the byte after the '='s may close it
		}
	}
	return len(src)
}

// skipQuoted returns the index past the string quoted by src[i]. A
// backslash escapes the next byte; an unescaped newline ends the string
// (neither Lua compiles it, and the scan goes on as code).
func skipQuoted(src string, i int, ln *int) int {
	quote := src[i]
	for i++; i < len(src); i++ {
		switch src[i] {
		case quote:
			return i + 1
		case '\n':
			return i
		case '\\':
			if i+1 < len(src) && src[i+1] == '\n' {
				*ln++
			}
			i++
		}
	}
	return len(src)
}

// skipNumber returns the index past the number at src[i], read as Lua
// 5.1 does: digits and dots, an exponent's sign, then letters and digits
// (0x1F).
func skipNumber(src string, i int) int {
	for i < len(src) && (isLuaDigit(src[i]) || src[i] == '.') {
		i++
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
	}
	for i < len(src) && (isLuaNameStart(src[i]) || isLuaDigit(src[i])) {
		i++
	}
	return i
}

func isLuaDigit(c byte) bool     { return '0' <= c && c <= '9' }
func isLuaNameStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
