package commands

import (
	"strconv"
	"sync/atomic"

	"github.com/sessproxy/sessproxy/internal/resp"
)

// CLIENT TRACKING … REDIRECT <id>, for RESP2 clients, which have no
// pushes: a tracking client names another connection, subscribed to the
// __redis__:invalidate channel, which receives its invalidations as pub/sub
// messages (a RESP3 target gets them as pushes), as in Redis. SUBSCRIBE
// and UNSUBSCRIBE are served for that channel only: sessproxy is no
// pub/sub broker.

// invalidateChannel is the channel Redis sends redirected invalidations on.
const invalidateChannel = "__redis__:invalidate"

// subscription is a client's SUBSCRIBE __redis__:invalidate: on is set by
// the connection's goroutine and read by whoever delivers invalidations.
type subscription struct {
	on   atomic.Bool
	gone atomic.Bool // the connection ended (Disconnect)
}

// SUBSCRIBE channel [channel …]: __redis__:invalidate only.
func (e *Engine) subscribe(c *Call) {
	for _, ch := range c.Args[1:] {
		if string(ch) != invalidateChannel {
			c.Out.Error(errSubscribeChannel(string(ch)))
			return
		}
	}
	for range c.Args[1:] {
		c.Client.sub.on.Store(true)
		subscribeReply(c.Out, "subscribe", invalidateChannel, 1)
	}
}

// UNSUBSCRIBE [channel …]
func (e *Engine) unsubscribe(c *Call) {
	cl := c.Client
	if len(c.Args) == 1 {
		if !cl.sub.on.Load() {
			subscribeReply(c.Out, "unsubscribe", "", 0)
			return
		}
		cl.sub.on.Store(false)
		subscribeReply(c.Out, "unsubscribe", invalidateChannel, 0)
		return
	}
	for _, ch := range c.Args[1:] {
		if string(ch) == invalidateChannel {
			cl.sub.on.Store(false)
		}
		n := 0
		if cl.sub.on.Load() {
			n = 1
		}
		subscribeReply(c.Out, "unsubscribe", string(ch), n)
	}
}

// subscribeReply writes Redis's (un)subscribe confirmation: a push in
// RESP3, an array in RESP2; channel "" is the null of an UNSUBSCRIBE
// without subscriptions.
func subscribeReply(out *resp.Writer, kind, channel string, count int) {
	if out.Proto == 3 {
		out.Buf = append(out.Buf, ">3\r\n"...)
	} else {
		out.Array(3)
	}
	out.BulkString(kind)
	if channel == "" {
		out.Null()
	} else {
		out.BulkString(channel)
	}
	out.Int(int64(count))
}

// subscribedAllows reports whether a RESP2 client in subscribed mode may
// run cmd, as Redis allows only these there.
func subscribedAllows(name string) bool {
	switch name {
	case "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ping", "quit", "reset":
		return true
	}
	return false
}

// subscribedPing is PING's reply in RESP2 subscribed mode: [pong, message].
func subscribedPing(c *Call) {
	c.Out.Array(2)
	c.Out.BulkString("pong")
	if len(c.Args) > 1 {
		c.Out.Bulk(c.Args[1])
	} else {
		c.Out.BulkString("")
	}
}

// redirectTarget finds the client a REDIRECT names.
func (e *Engine) redirectTarget(arg []byte) (*Client, string) {
	id, err := strconv.ParseInt(string(arg), 10, 64)
	if err != nil {
		return nil, msgNotInteger
	}
	e.clients.mu.Lock()
	target := e.clients.byID[id]
	e.clients.mu.Unlock()
	if target == nil {
		return nil, msgRedirectMissing
	}
	return target, ""
}

// deliver sends a tracking client's invalidations (nil names: the flush)
// where they go: its redirect target, else itself when it speaks RESP3.
func (cl *Client) deliver(ct *clientTracking, names []string) {
	if ct == nil || ct.redirect == nil {
		cl.push(invalidation(names))
		return
	}
	target := ct.redirect
	switch {
	case target.sub.gone.Load():
		// As Redis: the tracking client learns its target is gone.
		if cl.pusher != nil && cl.Proto() == 3 {
			cl.pusher.Push([]byte(">2\r\n$21\r\ntracking-redir-broken\r\n:" + strconv.FormatInt(target.ID, 10) + "\r\n"))
		}
	case target.Proto() == 3:
		target.push(invalidation(names))
	case target.sub.on.Load() && target.pusher != nil:
		target.pusher.Push(invalidateMessage(names))
	}
}

// invalidateMessage is a redirected invalidation for a RESP2 subscriber:
// [message, __redis__:invalidate, [names…]] (a null for the flush).
func invalidateMessage(names []string) []byte {
	w := resp.Writer{Proto: 2}
	w.Array(3)
	w.BulkString("message")
	w.BulkString(invalidateChannel)
	if names == nil {
		w.Null()
		return w.Buf
	}
	w.Array(len(names))
	for _, n := range names {
		w.BulkString(n)
	}
	return w.Buf
}
