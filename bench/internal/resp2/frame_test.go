package resp2

import (
	"strings"
	"testing"
)

func TestFrame(t *testing.T) {
	cases := []struct {
		in   string
		want int // 0: incomplete
		bad  bool
	}{
		{"+OK\r\n", 5, false},
		{"-ERR x\r\n:1\r\n", 8, false},
		{":12\r\n", 5, false},
		{"$3\r\nfoo\r\n", 9, false},
		{"$3\r\nfoo\r", 0, false},
		{"$-1\r\n", 5, false},
		{"*-1\r\n", 5, false},
		{"*0\r\n", 4, false},
		{"*2\r\n$3\r\nset\r\n$1\r\nk\r\n+extra", 20, false},
		{"*2\r\n$3\r\nset\r\n$1\r\nk", 0, false},
		{"*2\r\n*1\r\n:1\r\n$-1\r\n", 17, false},
		{"", 0, false},
		{"+OK", 0, false},
		{"PING\r\n", 0, true},
		{"$abc\r\n", 0, true},
		{"$1234567890\r\n", 0, true},
		{"$1\r\naXY", 0, true},
		{strings.Repeat("*1\r\n", maxDepth+2) + ":1\r\n", 0, true},
	}
	for _, c := range cases {
		n, err := Frame([]byte(c.in))
		if n != c.want || (err != nil) != c.bad {
			t.Errorf("Frame(%q) = %d, %v; want %d, error %v", c.in, n, err, c.want, c.bad)
		}
	}
}

func TestArgs(t *testing.T) {
	got := Args([]byte("*3\r\n$3\r\nset\r\n$1\r\nk\r\n$0\r\n\r\n"))
	if len(got) != 3 || string(got[0]) != "set" || string(got[1]) != "k" || len(got[2]) != 0 {
		t.Fatalf("Args = %q", got)
	}
	for _, bad := range []string{"+OK\r\n", "*1\r\n:1\r\n", "*0\r\n", "*1\r\n$5\r\nab\r\n", "*1\r\n$1\r\naXY"} {
		if got := Args([]byte(bad)); got != nil {
			t.Errorf("Args(%q) = %q, want nil", bad, got)
		}
	}
}

func TestCommands(t *testing.T) {
	var names []string
	n, err := Commands([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI"), func(args [][]byte) { names = append(names, string(args[0])) })
	if n != 34 || err != nil || strings.Join(names, " ") != "PING GET" {
		t.Fatalf("Commands = %d, %v, %q; want 34, nil, [PING GET]", n, err, names)
	}
	if _, err := Commands([]byte("*0\r\n"), func([][]byte) {}); err == nil {
		t.Fatal("an empty array was taken for a command")
	}
}
