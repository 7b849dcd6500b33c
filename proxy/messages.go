package proxy

import "strconv"

// Every message a client can see from this package: the proxy's own
// refusals, sent before or instead of any command.
const (
	msgMaxClients = "-ERR max number of clients reached\r\n"
	msgInternal   = "ERR internal error"
	// redcon's and Redis's words for the same mistakes, so a request is
	// refused alike whichever of the two sees it first.
	msgInvalidMultibulkLength = "ERR Protocol error: invalid multibulk length"
	msgInvalidBulkLength      = "ERR Protocol error: invalid bulk length"
	msgInlineTooBig           = "ERR Protocol error: too big inline request"
	msgUnbalancedQuotes       = "ERR Protocol error: unbalanced quotes in request"
)

// errRedcon is redcon's refusal of a request, in its words. The scanner
// refuses every such request first (FuzzRequestScanner); this is the
// answer should one get through.
func errRedcon(err error) string { return "ERR " + err.Error() }

// errExpectedDollar quotes the offending byte only when it is printable: a
// raw \r or \n would break the reply line.
func errExpectedDollar(got byte) string {
	if got < ' ' || got > '~' {
		got = '?'
	}
	return "ERR Protocol error: expected '$', got '" + string(rune(got)) + "'"
}

func errTooLarge(max int64) string {
	return "ERR Protocol error: request larger than max_request_bytes (" + strconv.FormatInt(max, 10) + ")"
}

func errReplyLimit(max int64) string {
	return "-ERR reply larger than server.max_client_reply_bytes (" + strconv.FormatInt(max, 10) + "): closing the connection\r\n"
}
