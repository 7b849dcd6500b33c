// Command gofloor is the cheapest proxy Go can be: every client connection gets its
// own upstream connection and the bytes are copied both ways, unparsed. `make bench`
// runs it beside sessproxy to show the ceiling a goroutine-per-connection Go proxy
// reaches on the machine at hand; sessproxy cannot beat a proxy that does nothing.
//
//	gofloor LISTEN_ADDR UPSTREAM_ADDR
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gofloor LISTEN_ADDR UPSTREAM_ADDR")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
	for {
		client, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "gofloor:", err)
			os.Exit(1)
		}
		go relay(client, os.Args[2])
	}
}

// relay copies client → upstream and upstream → client until either side closes.
func relay(client net.Conn, upstreamAddr string) {
	defer client.Close()
	upstream, err := net.Dial("tcp", upstreamAddr)
	if err != nil {
		return
	}
	defer upstream.Close()
	go func() {
		_, _ = io.Copy(upstream, client)
		upstream.Close()
	}()
	_, _ = io.Copy(client, upstream)
}
