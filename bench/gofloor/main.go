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
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: gofloor LISTEN_ADDR UPSTREAM_ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	for {
		client, err := ln.Accept()
		if err != nil {
			return err
		}
		go relay(client, args[1])
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
