package commands

import "testing"

func TestReplyResult(t *testing.T) {
	tests := []struct {
		reply string
		want  Result
	}{
		{"+OK\r\n", ResultOK},
		{"$-1\r\n", ResultOK},
		{"-" + msgNoAuth + "\r\n", ResultNoAuth},
		{"-" + msgWrongPass + "\r\n", ResultNoAuth},
		{"-TOMBSTONE session was destroyed\r\n", ResultTombstone},
		{"-NOPERM this user has no permissions to run the 'sess.clear' command\r\n", ResultNoPerm},
		{"-ERR upstream error: i/o timeout\r\n", ResultUpstream},
		{"-READONLY You can't write against a read only replica.\r\n", ResultUpstream},
		{"-LOADING Redis is loading the dataset in memory\r\n", ResultUpstream},
		{"-CLUSTERDOWN The cluster is down\r\n", ResultUpstream},
		{"-ERR wrong number of arguments for 'get' command\r\n", ResultError},
		{"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", ResultError},
		{"-READONLYISH not a state code\r\n", ResultError},
	}
	for _, tt := range tests {
		if got := replyResult([]byte(tt.reply)); got != tt.want {
			t.Errorf("replyResult(%q) = %v, want %v", tt.reply, got, tt.want)
		}
	}
}
