package commands

import (
	"strings"
	"testing"
)

func TestScriptNesting(t *testing.T) {
	nest := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	tests := []struct {
		name  string
		src   string
		depth int
		line  int
	}{
		{"a flat script is level 0", "local a = 1 return a + b * c", 0, 1},
		{"one call is one level", "return f(1)", 1, 1},
		{"parentheses", "return " + nest("(", "1", ")", 150), 150, 1},
		{"tables", "return " + nest("{", "", "}", 150), 150, 1},
		{"indexes", "return " + nest("a[", "1", "]", 150), 150, 1},
		{"mixed brackets", "return " + nest("f({[", "1", "]})", 50), 150, 1},
		{"blocks", nest("do ", "", " end", 30) + nest("if x then ", "", " end", 30), 30, 1},
		{"a function's parameters are one level inside it", "function f(a) end", 2, 1},
		{"while and for open their block with do", "while x do for i = 1, 2 do end end", 2, 1},
		{"repeat ends at until", "repeat repeat until (x) until y", 2, 1},
		{"a run of unary operators", "return not not - - # x", 5, 1},
		{"an operand ends the run", "return -a + -b + -c + -d", 1, 1},
		{"a chain of ..", "return a .. b .. c .. d", 3, 1},
		{"a comparison ends the chain", "return a .. b == c .. d", 1, 1},
		{"a chain of ^", "return a ^ b ^ c", 2, 1},
		{"+ ends a ^ chain but not a .. chain", "return a^b + c^d .. e^f^g .. h", 3, 1},
		{"a call with a string keeps the chain", `return a .. f"x" .. f'y' .. b`, 3, 1},
		{"a new statement ends the chain", "x = a .. b y = c", 1, 1},
		{"suffixes do not nest", "return a.b.c.d:e()[1].f()()", 1, 1},
		{"brackets in strings do not count", `return "((\"((" .. '{{\'{{' .. "\\"`, 2, 1},
		{"brackets in long strings do not count", "return [[((]] .. [==[ (( ]] ]=] ]==]", 1, 1},
		{"brackets in comments do not count", "-- ((((\nreturn 1 --[[ (( \n ((]] --[=[ ]] ]=] + 1", 0, 1},
		{"'--[=' without '[' is a line comment", "--[= ((\nreturn (1)", 1, 2},
		{"'[=' without '[' is a bracket", "return a[=1]", 1, 1},
		{"numbers", "return 1e-5 + 0x1F + .5 + 3.", 0, 1},
		{"the line where the deepest level is first reached", "return 1\nreturn f(\n(\n1))", 2, 3},
		{"an unclosed string goes on to the end of its line", "return '((\n((", 2, 2},
		{"an unclosed long string goes to the end", "return [[ ((((", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			depth, line := scriptNesting(tt.src, 1000)
			if depth != tt.depth || line != tt.line {
				t.Errorf("scriptNesting(%q) = %d on line %d, want %d on line %d", tt.src, depth, line, tt.depth, tt.line)
			}
		})
	}
}

// The scan stops as soon as the limit is passed, at Redis's bound and
// above: what Redis compiles is kept, what it refuses is refused.
func TestScriptNestingBound(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		refused bool
	}{
		// Redis 7.0.15 compiles 198 parentheses and 199 tables, refuses one more.
		{"198 parentheses, as Redis compiles", "return " + strings.Repeat("(", 198) + "1" + strings.Repeat(")", 198), false},
		{"199 tables, as Redis compiles", "return " + strings.Repeat("{", 199) + strings.Repeat("}", 199), false},
		{"199 function statements, as Redis compiles", strings.Repeat("function f() ", 199) + strings.Repeat("end ", 199), false},
		{"198 nots, as Redis compiles", "return " + strings.Repeat("not ", 198) + "1", false},
		{"198 concatenations, as Redis compiles", "return " + strings.Repeat("'a'..", 198) + "'a'", false},
		{"201 parentheses", "return " + strings.Repeat("(", 201) + "1" + strings.Repeat(")", 201), true},
		{"201 blocks", strings.Repeat("do ", 201) + strings.Repeat("end ", 201), true},
		{"201 unary minuses", "return " + strings.Repeat("- ", 201) + "1", true},
		{"8 MiB of parentheses", "return " + strings.Repeat("(", 8<<20), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			depth, _ := scriptNesting(tt.src, maxScriptNesting)
			if refused := depth > maxScriptNesting; refused != tt.refused {
				t.Errorf("depth %d: refused = %v, want %v", depth, refused, tt.refused)
			}
			if depth > maxScriptNesting+1 {
				t.Errorf("depth %d: the scan went on past the limit", depth)
			}
		})
	}
}

func TestScriptsTooDeepOrTooLargeAreRefused(t *testing.T) {
	f := newFixture(t, nil)
	f.wantCall("-ERR Error compiling script (new function): user_script:2: chunk has too many syntax levels",
		"EVAL", "local x = 1\nreturn "+strings.Repeat("(", 300)+"1"+strings.Repeat(")", 300), "0")
	f.wantCall("-ERR Error compiling script (new function): user_script:1: chunk has too many syntax levels",
		"SCRIPT", "LOAD", strings.Repeat("{", 1000))
	f.wantCallError("script too large", "EVAL", "return 1"+strings.Repeat(" ", maxScriptBytes), "0")
	f.wantCall(":1", "EVAL", "local t = "+strings.Repeat("{", 50)+"1"+strings.Repeat("}", 50)+" for i = 1, 50 do t = t[1] end return t", "0")
}
