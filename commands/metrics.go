package commands

import (
	"bytes"
	"time"

	"github.com/sessproxy/sessproxy/commands/ttl"
)

// Metrics receives what the engine counts; the metrics package implements
// it. Its methods run on the request path: they must not block or
// allocate.
type Metrics interface {
	// Command returns the recorder of one command name: each registry
	// entry's, and UnknownCommand's for every name outside the registry.
	// It is called while the engine is built, never per command.
	Command(name string) CommandMetrics
	// Unsupported returns the counter of one command name sessproxy does
	// not serve: a Redis command name (redisCommandNames), or
	// UnknownCommand for every other name. It is called while the engine
	// is built, never per command.
	Unsupported(name string) Counter
	// WriteRefused counts a write the proxy refused, by reason (a
	// tombstone is counted whether it was answered with an error or
	// ignored under on_write = "ignore").
	WriteRefused(reason Refusal)
	// TTLClamped counts a TTL the policy raised to ttl.min or lowered to
	// ttl.max.
	TTLClamped(bound ttl.Bound)
	// ClientConnected, ClientDisconnected and ConnectionRefused follow the
	// client connections.
	ClientConnected()
	ClientDisconnected()
	ConnectionRefused()
	// ClientClosed counts a client the proxy closed itself, and why.
	ClientClosed(reason CloseReason)
}

// CommandMetrics records the commands of one name.
type CommandMetrics interface {
	// Done records one command: how it ended and how long the batch it
	// ran in took, from the proxy starting it to its reply being ready.
	Done(result Result, elapsed time.Duration)
}

// Counter counts one thing.
type Counter interface{ Inc() }

// UnknownCommand is the one name under which commands outside the
// registry are counted, so a client sending random names cannot grow the
// metrics.
const UnknownCommand = "unknown"

// Result is how a command ended, read from its reply, so that every path
// that answers is counted alike.
type Result uint8

// Results.
const (
	ResultOK        Result = iota // any reply that is not an error
	ResultError                   // another error: syntax, arity, unknown command, payload, Redis's other error replies
	ResultTombstone               // -TOMBSTONE: a write to a destroyed session
	ResultNoPerm                  // -NOPERM: the user's role, or a key outside the namespace
	ResultNoAuth                  // -NOAUTH, -WRONGPASS
	ResultUpstream                // the upstream failed (timeout, connection) or answered with its state (upstreamStateCodes)
	NumResults                    // how many results there are, for arrays indexed by result
)

func (r Result) String() string {
	switch r {
	case ResultOK:
		return "ok"
	case ResultTombstone:
		return "tombstone"
	case ResultNoPerm:
		return "noperm"
	case ResultNoAuth:
		return "noauth"
	case ResultUpstream:
		return "upstream_error"
	}
	return "error"
}

// CloseReason is why the proxy closed a client connection.
type CloseReason uint8

// Close reasons.
const (
	CloseRequestTooLarge CloseReason = iota // a request over server.max_request_bytes
	CloseProtocolError                      // a malformed request
	CloseRequestTimeout                     // a request not completed within server.request_timeout
	CloseReplyLimit                         // unsent replies over server.max_client_reply_bytes
	CloseWriteTimeout                       // replies not taken within server.request_timeout
	CloseIdleTimeout                        // idle between requests for server.idle_timeout
	NumCloseReasons                         // how many reasons there are, for arrays indexed by reason
)

func (r CloseReason) String() string {
	switch r {
	case CloseRequestTooLarge:
		return "request_too_large"
	case CloseProtocolError:
		return "protocol_error"
	case CloseRequestTimeout:
		return "request_timeout"
	case CloseReplyLimit:
		return "reply_limit"
	case CloseIdleTimeout:
		return "idle_timeout"
	}
	return "write_timeout"
}

// replyResult classifies a command's reply by its error code.
func replyResult(reply []byte) Result {
	if len(reply) == 0 || reply[0] != '-' {
		return ResultOK
	}
	msg := reply[1:]
	switch {
	case hasPrefix(msg, codeTombstone):
		return ResultTombstone
	case hasPrefix(msg, codeNoPerm):
		return ResultNoPerm
	case hasPrefix(msg, codeNoAuth), hasPrefix(msg, codeWrongPass):
		return ResultNoAuth
	case hasPrefix(msg, prefixUpstream), upstreamRefusal(reply) != nil:
		return ResultUpstream
	}
	return ResultError
}

// upstreamStateCodes are Redis error replies, passed to the client as they
// came, that say what state the upstream is in rather than what is wrong
// with the command: a demoted master (READONLY, a failover under way), a
// server loading its data, a cluster or master down, a slot migrating, a
// script running long, a failed save. They count as upstream errors, so a
// failover shows in the metrics as the upstream's trouble.
var upstreamStateCodes = [...]string{"READONLY ", "LOADING ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "BUSY ", "MISCONF ", "NOREPLICAS ", "OOM "}

// upstreamRefusal returns the Redis error of an error reply that is Redis
// refusing a command for its state (upstreamStateCodes), also when it is
// the queued command an EXECABORT names (errExecAbort); nil for any other
// reply.
func upstreamRefusal(reply []byte) []byte {
	if len(reply) == 0 || reply[0] != '-' {
		return nil
	}
	msg := reply[1:]
	if i := bytes.Index(msg, []byte(execAbortQueued)); i >= 0 && hasPrefix(msg, codeExecAbort) {
		msg = msg[i+len(execAbortQueued):]
	}
	msg = bytes.TrimRight(msg, "\r\n")
	for _, code := range upstreamStateCodes {
		if hasPrefix(msg, code) {
			return msg
		}
	}
	return nil
}

// hasPrefix is bytes.HasPrefix for a string prefix, without converting it.
func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// countClamp counts a decision's TTL moved to ttl.min or ttl.max (a cap
// by ttl.absolute is the session's lifetime ending, not a clamp).
func (e *Engine) countClamp(d ttl.Decision) {
	if d.Clamped == ttl.BoundMin || d.Clamped == ttl.BoundMax {
		e.metrics.TTLClamped(d.Clamped)
	}
}

// nopMetrics is the engine's Metrics when none are configured.
type nopMetrics struct{}

func (nopMetrics) Command(string) CommandMetrics { return nopMetrics{} }
func (nopMetrics) Done(Result, time.Duration)    {}
func (nopMetrics) WriteRefused(Refusal)          {}
func (nopMetrics) Unsupported(string) Counter    { return nopMetrics{} }
func (nopMetrics) Inc()                          {}
func (nopMetrics) TTLClamped(ttl.Bound)          {}
func (nopMetrics) ClientConnected()              {}
func (nopMetrics) ClientDisconnected()           {}
func (nopMetrics) ConnectionRefused()            {}
func (nopMetrics) ClientClosed(CloseReason)      {}
