package store

import (
	"net"
	"sync/atomic"
)

// passCommands passes client's commands on to server until either side
// closes, the commands half of the store tests' relays
// (redistest.Relay): the first read that match finds in while armed is
// set disarms it and sets marked, on which the replies half acts.
func passCommands(server, client net.Conn, match func([]byte) bool, armed, marked *atomic.Bool) {
	defer server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 && match(buf[:n]) && armed.CompareAndSwap(true, false) {
			marked.Store(true)
		}
		if n > 0 {
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
