package commands

import (
	"strconv"
	"strings"
)

// Error codes the metrics classify replies by (replyResult), and the
// prefix of an upstream failure's reply.
const (
	codeNoAuth     = "NOAUTH "
	codeWrongPass  = "WRONGPASS "
	codeNoPerm     = "NOPERM "
	codeTombstone  = "TOMBSTONE "
	codeExecAbort  = "EXECABORT "
	prefixUpstream = "ERR upstream error: "
)

// Every message a client can see from this package. Redis's own wording is
// kept where Redis has one, so client libraries that match on it keep
// working.
const (
	msgNoAuth          = codeNoAuth + "Authentication required."
	msgHelloNoAuth     = codeNoAuth + "HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	msgWrongPass       = codeWrongPass + "invalid username-password pair or user is disabled."
	msgNoPassword      = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	msgSyntax          = "ERR syntax error"
	msgNotInteger      = "ERR value is not an integer or out of range"
	msgInternal        = "ERR internal error"
	msgReplyLimit      = "ERR reply larger than server.max_client_reply_bytes: closing the connection"
	msgPersistDenied   = "ERR PERSIST is not allowed on session keys (ttl.persist = \"deny\")"
	msgLockPersist     = "ERR PERSIST is not allowed on lock keys (ttl.persist = \"deny\"): a lock always expires within ttl.lock_max"
	msgLockHash        = "ERR hash commands are not served on lock keys: a lock is a string (see docs/commands.md, Locks)"
	msgNoProto         = "NOPROTO unsupported protocol version"
	msgProtoNotInt     = "ERR Protocol version is not an integer or out of range"
	msgClientName      = "ERR Client names cannot contain spaces, newlines or special characters."
	msgTTLArg          = "ERR invalid TTL: must be a positive number of seconds"
	msgInvalidCursor   = "ERR invalid cursor"
	msgNoOwnerField    = "ERR no owner index: set session.owner_field (a JSON path such as \"passport.user\")"
	msgFieldsNeedJSON  = "ERR field commands need JSON sessions (codec.format = \"json\" or \"msgpack\")"
	msgExpireNX        = "ERR NX and XX, GT or LT options at the same time are not compatible"
	msgExpireGTLT      = "ERR GT and LT options at the same time are not compatible"
	msgMultiNested     = "ERR MULTI calls can not be nested"
	msgWatchInMulti    = "ERR WATCH inside MULTI is not allowed"
	msgExecAbort       = "EXECABORT Transaction discarded because of previous errors."
	msgExecNoMulti     = "ERR EXEC without MULTI"
	msgDiscardNoMulti  = "ERR DISCARD without MULTI"
	msgNotFloat        = "ERR value is not a valid float"
	msgNoExpires       = "ERR session refused: its payload has no cookie.expires and the command gives no TTL (ttl.require_expires = true)"
	msgWrongType       = "WRONGTYPE Operation against a key holding the wrong kind of value"
	msgNoScript        = "NOSCRIPT No matching script. Please use EVAL."
	msgNegativeKeys    = "ERR Number of keys can't be negative"
	msgTooManyKeys     = "ERR Number of keys can't be greater than number of args"
	msgCrossSlot       = "CROSSSLOT Keys in request don't hash to the same slot"
	msgScriptFlushMode = "ERR SCRIPT FLUSH only supports SYNC|ASYNC option"

	msgGetKeysInvalidCommand = "ERR Invalid command specified"
	msgGetKeysArity          = "ERR Invalid number of arguments specified for command"
	msgGetKeysInvalidArgs    = "ERR Invalid arguments specified for command"
	msgGetKeysNone           = "ERR The command has no key arguments"
)

// errScriptsDenied refuses a script command under [scripts] mode = "deny".
func errScriptsDenied(cmd string) string {
	return "ERR " + strings.ToUpper(printable(cmd)) + " is refused: scripts are off (scripts.mode = \"deny\")"
}

// errFunctionsRefused refuses FCALL, FCALL_RO and FUNCTION.
func errFunctionsRefused(cmd string) string {
	return "ERR " + strings.ToUpper(printable(cmd)) + " is not served by sessproxy: Redis functions run without the session policy; use EVAL or EVALSHA, which run the script inside it (see docs/commands.md, Scripts)"
}

// errScriptCompile answers a script that does not parse, in Redis's words.
func errScriptCompile(err error) string {
	return "ERR Error compiling script (new function): " + strings.ReplaceAll(err.Error(), "\n", " ")
}

// errScriptNesting refuses a script nested deeper than Lua 5.1 compiles,
// in Redis's words (line is where the bound was passed).
func errScriptNesting(line int) string {
	return "ERR Error compiling script (new function): user_script:" + strconv.Itoa(line) + ": chunk has too many syntax levels"
}

// errScriptTooLarge refuses a script longer than the proxy parses
// (maxScriptBytes); Redis has no such bound.
func errScriptTooLarge(max int) string {
	return "ERR script too large: sessproxy compiles scripts of at most " + strconv.Itoa(max) + " bytes (see docs/limits.md)"
}

// Messages of the script wrapper's policy refusals (scriptWriteRefusal,
// scriptReadRefusal).
const (
	msgScriptCodecValues  = "ERR scripts cannot read or write session values under this codec (msgpack, compression, encryption or an envelope store what a script could not produce or read; see docs/commands.md, Scripts)"
	msgScriptOwnerWrites  = "ERR scripts cannot write session values with session.owner_field set: the owner index would miss them (see docs/commands.md, Scripts)"
	msgScriptAbsolute     = "ERR scripts cannot write session values or TTLs with ttl.absolute set (see docs/commands.md, Scripts)"
	msgScriptNamespaces   = "ERR a script's KEYS must belong to one namespace (see docs/commands.md, Scripts)"
	msgScriptAbsoluteIdle = "ERR scripts cannot read session values with both ttl.idle and ttl.absolute set (see docs/commands.md, Scripts)"
)

// reasonStoredNotObject: SESS.FSET or SESS.FDEL on a stored value that
// is not one JSON object (written to Redis around the proxy), in
// errPayload's words.
const reasonStoredNotObject = "the stored session is not a JSON object, so its fields cannot be edited; SESS.SET it whole"

// errLockID answers a SESS.* command given a lock's id.
func errLockID(suffix string) string {
	return errSessionID("ends in the lock suffix \"" + printable(suffix) + "\" (session.lock_suffixes): a lock takes plain commands (SET, GET, DEL…), not SESS.*")
}

func errArity(name string) string {
	return "ERR wrong number of arguments for '" + strings.ToLower(name) + "' command"
}

func errUnknownCommand(name string) string {
	return "ERR unknown or unsupported command '" + printable(name) + "': sessproxy serves session keys only (see docs/commands.md)"
}

// errTooManyTransactions refuses a MULTI or WATCH past
// server.max_transactions.
func errTooManyTransactions(max int) string {
	return "ERR too many transactions open: server.max_transactions (" + strconv.Itoa(max) + ") clients are in WATCH or MULTI; try again"
}

// errTooManyWatchedKeys refuses a WATCH that would make its transaction
// watch more than maxWatchedKeys keys.
func errTooManyWatchedKeys(max int) string {
	return "ERR too many watched keys: a transaction may WATCH at most " + strconv.Itoa(max) + " keys (see docs/limits.md)"
}

// errTxCommandDiscarded answers each command after a refused MULTI, up to
// its EXEC or DISCARD.
func errTxCommandDiscarded(reason string) string {
	return reason + "; command discarded, EXEC will abort"
}

// errNotInTransaction refuses at queue time a command that cannot run
// inside MULTI … EXEC (registry flag flagNoTx).
func errNotInTransaction(name string) string {
	return "ERR '" + strings.ToLower(name) + "' is not allowed in a transaction (see docs/commands.md, Transactions)"
}

// errNeedsResult refuses at queue time a command that, with these
// arguments, needs a result from Redis before it can finish queueing
// (SET … GET, GETSET, more than 1024 keys…).
func errNeedsResult(name string) string {
	return "ERR '" + strings.ToLower(name) + "' with these arguments is not allowed in a transaction: it needs a reply from Redis before it can finish (see docs/commands.md, Transactions)"
}

func errTransactionTooLong(max int) string {
	return "ERR too many commands in the transaction: at most " + strconv.Itoa(max) + " (server.max_transaction_commands)"
}

func errTransactionTooLarge(max int64) string {
	return "ERR transaction too large: its commands may hold at most " + strconv.FormatInt(max, 10) + " bytes (server.max_transaction_bytes)"
}

func errUnknownSubcommand(cmd, sub string) string {
	return "ERR unknown subcommand '" + printable(sub) + "'. Try " + cmd + " HELP."
}

func errUnsupportedOption(opt string) string {
	return "ERR Unsupported option " + printable(opt)
}

func errHelloOption(opt string) string {
	return "ERR Syntax error in HELLO option '" + printable(opt) + "'"
}

func errSetInfoValue(attr string) string {
	return "ERR " + strings.ToLower(attr) + " cannot contain spaces, newlines or special characters."
}

// errClientNameLength answers a client name, or a CLIENT SETINFO value
// (what: "lib-name", "lib-ver"), longer than maxClientNameBytes.
func errClientNameLength(what string) string {
	return "ERR " + what + " longer than " + strconv.Itoa(maxClientNameBytes) + " bytes"
}

func errUnrecognizedOption(opt string) string {
	return "ERR Unrecognized option '" + printable(opt) + "'"
}

func errInvalidExpire(cmd string) string {
	return "ERR invalid expire time in '" + strings.ToLower(cmd) + "' command"
}

func errNoPermission(cmd string) string {
	return codeNoPerm + "this user has no permissions to run the '" + strings.ToLower(cmd) + "' command"
}

func errOutsidePrefix(key string) string {
	return codeNoPerm + "key '" + printable(key) + "' is outside the session namespace"
}

func errTombstoned(sid string) string {
	return codeTombstone + "session " + printable(sid) + " was destroyed"
}

func errPayload(reason string) string {
	return "ERR invalid session payload: " + reason
}

func errNoNamespace(name string) string {
	return "ERR no such namespace '" + printable(name) + "' (see [[namespace]] in the config)"
}

func errSessionID(reason string) string {
	return "ERR invalid session id: " + reason
}

func errDecode(sid string, err error) string {
	return "ERR session " + printable(sid) + " cannot be decoded: " + err.Error()
}

// decodeError is a stored value that cannot be decoded, met inside a bulk
// command; the reply names the session.
type decodeError struct {
	sid string
	err error
}

func (d *decodeError) Error() string { return errDecode(d.sid, d.err) }

func errBusy(sid string) string {
	return "ERR session " + printable(sid) + " is being changed by other writers; try again"
}

// errHashTooLarge refuses a hash write that would take the hash past
// codec.max_payload_bytes (its fields and values together). The script
// wrapper words its own refusals of hash writes the same (scriptwrap.go).
func errHashTooLarge(sid string, max int) string {
	return msgHashSession + printable(sid) + msgHashWouldExceed + "codec.max_payload_bytes (" + strconv.Itoa(max) + " bytes of fields and values): nothing written"
}

// errHashTooManyFields refuses a hash write that would take the hash past
// codec.max_hash_fields.
func errHashTooManyFields(sid string, max int) string {
	return msgHashSession + printable(sid) + msgHashWouldExceed + "codec.max_hash_fields (" + strconv.Itoa(max) + " fields): nothing written"
}

// The parts of a hash write's refusal around the session id, by which a
// script's refusal is recognised (scriptRefusal).
const (
	msgHashSession     = "ERR hash session "
	msgHashWouldExceed = " would exceed "
)

func errHashArgs(cmd string, max int) string {
	return "ERR too many arguments for '" + cmd + "' on a session key: at most " + strconv.Itoa(max) + " after the key"
}

// execAbortQueued joins Redis's EXECABORT and the queued command's error
// in errExecAbort.
const execAbortQueued = " Redis answered a queued command: "

// errExecAbort is Redis's EXECABORT with the error Redis gave the queued
// command it refused: Redis gives that error when the command is queued,
// but the proxy queues a transaction itself and answered QUEUED.
func errExecAbort(abort, queued error) string {
	return abort.Error() + execAbortQueued + queued.Error()
}

func errUpstream(err error) string {
	return prefixUpstream + err.Error()
}

func errSelect(db int) string {
	return "ERR DB index is out of range: sessproxy serves db " + strconv.Itoa(db) + " only"
}

// printable caps a client-supplied string quoted back in a reply, so an
// error never echoes a whole payload.
func printable(s string) string {
	const max = 128
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// CLIENT TRACKING and CLIENT CACHING (tracking.go), in Redis's words.
const (
	msgCachingMode         = "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"
	msgCachingYes          = "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
	msgCachingNo           = "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
	msgPrefixNeedsBcast    = "ERR PREFIX option requires BCAST mode to be enabled"
	msgTrackingBcastSwitch = "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."
	msgBcastOptIn          = "ERR OPTIN and OPTOUT are not compatible with BCAST"
	msgOptInOptOut         = "ERR You can't use both OPTIN and OPTOUT"
	msgOptSwitch           = "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."
	// sessproxy's own: REDIRECT needs RESP2 Pub/Sub, which it does not serve.
	msgRedirectMissing = "ERR The client ID you want redirect to does not exist"
)

// errPrefixOverlap is Redis's reply to overlapping BCAST prefixes; which
// is "an existing" or "another provided".
func errPrefixOverlap(p, q, which string) string {
	return "ERR Prefix '" + printable(p) + "' overlaps with " + which + " prefix '" + printable(q) + "'. Prefixes for a single client must not overlap."
}

// errTrackingPrefixesTooLarge refuses BCAST prefixes past what the
// tracker holds of every client's (tracker.bcastBytes).
func errTrackingPrefixesTooLarge(max int64) string {
	return "ERR too many tracking prefixes: the BCAST prefixes of all clients may take at most " + strconv.FormatInt(max, 10) +
		" bytes, counting " + strconv.Itoa(bcastEntryBytes) + " per prefix besides its own (see docs/limits.md); nothing was added"
}

// errSubscribeChannel refuses SUBSCRIBE to any channel but the one of
// redirected invalidations.
func errSubscribeChannel(ch string) string {
	return "ERR sessproxy serves SUBSCRIBE only for " + invalidateChannel + " (CLIENT TRACKING … REDIRECT), not '" + printable(ch) + "': it is no pub/sub broker (see docs/commands.md, Client-side caching)"
}

// errSubscribedOnly refuses a command in RESP2 subscribed mode, in Redis's
// words.
func errSubscribedOnly(name string) string {
	return "ERR Can't execute '" + strings.ToLower(printable(name)) + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
}
