package proxy

import (
	"github.com/tidwall/redcon"
)

// errUnbalancedQuotes is the refusal of an inline request whose quotes do
// not pair: redcon's words, and Redis's.
var errUnbalancedQuotes = &limitError{msg: msgUnbalancedQuotes}

// parseRequest takes apart one whole request the scanner passed (it ends
// where the scanner said): a multibulk one with redcon.Parse, whose
// arguments slice raw; an inline one with parseInline. A request of no
// arguments gives none and no error: an empty inline line, or a count
// below 1 (*0, *-1), which Redis skips. An error is the request's
// refusal, a *limitError.
func parseRequest(raw []byte) ([][]byte, error) {
	if raw[0] != '*' {
		return parseInline(raw)
	}
	// The scanner passes a count only as Redis writes numbers (headerInt),
	// so one below 1 is one that starts with '0' or '-'.
	if raw[1] == '0' || raw[1] == '-' {
		return nil, nil
	}
	cmd, err := redcon.Parse(raw)
	if err != nil {
		return nil, &limitError{msg: errRedcon(err)}
	}
	return cmd.Args, nil
}

// parseInline takes apart an inline (telnet) request, raw up to and with
// its '\n', as redcon's reader does: words split at spaces; a word that
// starts with a quote runs to the matching quote, which a space or the end
// must follow, and inside it a backslash takes the next byte as it is
// (\n, \r and \t as control characters); a quote anywhere else is an
// error (TestParseInlineIsRedcons, FuzzParseInline).
//
// redcon gave every word a buffer as long as the rest of the line: a 4 KiB
// line of one-byte words held 4 MiB until it ran, which the budget counted
// as 4 KiB, and a line of spaces allocated 8 MiB in passing. Here every
// word is cut from one buffer as long as the line.
func parseInline(raw []byte) ([][]byte, error) {
	line := raw[:len(raw)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	out := make([]byte, 0, len(line)) // a word is never longer than its text
	// At most one argument per run of bytes between spaces (fewer where a
	// quoted one holds spaces).
	words, prev := 0, byte(' ')
	for _, c := range line {
		if c != ' ' && prev == ' ' {
			words++
		}
		prev = c
	}
	args := make([][]byte, 0, words)
	for i := 0; i < len(line); {
		switch q := line[i]; {
		case q == ' ':
			i++
		case q == '"' || q == '\'':
			start := len(out)
			i++
		quoted:
			for escape := false; ; i++ {
				if i == len(line) {
					return nil, errUnbalancedQuotes
				}
				c := line[i]
				switch {
				case escape:
					escape = false
					switch c {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					}
				case c == q:
					i++
					if i < len(line) && line[i] != ' ' {
						return nil, errUnbalancedQuotes
					}
					args = append(args, out[start:len(out):len(out)])
					break quoted
				case c == '\\':
					escape = true
					continue
				}
				out = append(out, c)
			}
		default:
			start := len(out)
			for ; i < len(line) && line[i] != ' '; i++ {
				if line[i] == '"' || line[i] == '\'' {
					return nil, errUnbalancedQuotes
				}
				out = append(out, line[i])
			}
			args = append(args, out[start:len(out):len(out)])
		}
	}
	return args, nil
}
