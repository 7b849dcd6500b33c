package resp2

import "errors"

// ErrFrame is a value that is not RESP2 (or nested deeper than maxDepth).
var ErrFrame = errors.New("not a RESP2 value")

// maxDepth bounds the nesting Frame follows: the floors forward commands
// (one array of bulks) and replies (EXEC's and SCAN's arrays nest twice).
const maxDepth = 8

// Frame is the length of the one whole RESP2 value at the start of b, or 0
// when b holds only part of it. Inline commands are not RESP2 values here.
func Frame(b []byte) (int, error) { return frame(b, 0) }

func frame(b []byte, depth int) (int, error) {
	if depth > maxDepth {
		return 0, ErrFrame
	}
	end := lineEnd(b)
	if end < 0 {
		return 0, nil
	}
	switch b[0] {
	case '+', '-', ':':
		return end, nil
	case '$', '*':
	default:
		return 0, ErrFrame
	}
	n, ok := atoi(b[1 : end-2])
	if !ok {
		return 0, ErrFrame
	}
	if n < 0 {
		return end, nil // null bulk or array
	}
	if b[0] == '$' {
		if len(b)-end < n+2 {
			return 0, nil
		}
		if b[end+n] != '\r' || b[end+n+1] != '\n' {
			return 0, ErrFrame
		}
		return end + n + 2, nil
	}
	at := end
	for i := 0; i < n; i++ {
		m, err := frame(b[at:], depth+1)
		if m == 0 || err != nil {
			return 0, err
		}
		at += m
	}
	return at, nil
}

// lineEnd is the index just past the first CRLF in b, or -1.
func lineEnd(b []byte) int {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return -1
}

// atoi parses a RESP length: an optional minus and at most 9 digits (Redis
// caps a bulk at 512 MB), so it cannot overflow even a 32-bit int.
func atoi(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// Args splits a command Frame accepted — an array of bulk strings — into
// its arguments, which share frame's memory; nil if it is not one.
func Args(frame []byte) [][]byte {
	end := lineEnd(frame)
	if end < 0 || frame[0] != '*' {
		return nil
	}
	n, ok := atoi(frame[1 : end-2])
	if !ok || n <= 0 {
		return nil
	}
	args := make([][]byte, 0, n)
	at := end
	for i := 0; i < n; i++ {
		rest := frame[at:]
		e := lineEnd(rest)
		if e < 0 || rest[0] != '$' {
			return nil
		}
		size, ok := atoi(rest[1 : e-2])
		if !ok || size < 0 || len(rest) < e+size+2 || rest[e+size] != '\r' || rest[e+size+1] != '\n' {
			return nil
		}
		args = append(args, rest[e:e+size])
		at += e + size + 2
	}
	return args
}

// errNotCommand is a whole value that is not a command (Args refuses it).
var errNotCommand = errors.New("not a command: want an array of bulk strings")

// Commands calls each with the arguments of every whole command at the
// start of b (they share b's memory) and returns how many bytes those
// commands take; a trailing partial command is left for later. A value that
// is not a command is an error: a floor forwarding it would get no reply,
// or a dropped upstream connection, and misroute every reply after it.
func Commands(b []byte, each func(args [][]byte)) (int, error) {
	at := 0
	for at < len(b) {
		m, err := Frame(b[at:])
		if err != nil || m == 0 {
			return at, err
		}
		args := Args(b[at : at+m])
		if args == nil {
			return at, errNotCommand
		}
		each(args)
		at += m
	}
	return at, nil
}
