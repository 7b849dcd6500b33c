// Package resp2 frames RESP2 replies for the bench floors, which forward
// reply bytes without decoding them.
package resp2

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// AppendReply appends one whole RESP2 reply read from rd to buf.
func AppendReply(rd *bufio.Reader, buf []byte) ([]byte, error) {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return buf, err
	}
	buf = append(buf, line...)
	if len(line) < 3 || (line[0] != '$' && line[0] != '*') {
		return buf, nil // status, error, integer
	}
	n, err := strconv.Atoi(string(line[1 : len(line)-2]))
	if err != nil {
		return buf, fmt.Errorf("bad reply header %q", line)
	}
	if line[0] == '*' {
		for i := 0; i < n && err == nil; i++ {
			buf, err = AppendReply(rd, buf)
		}
		return buf, err
	}
	if n < 0 {
		return buf, nil // null bulk
	}
	start := len(buf)
	buf = append(buf, make([]byte, n+2)...)
	_, err = io.ReadFull(rd, buf[start:])
	return buf, err
}
