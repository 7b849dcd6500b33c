package proxy

import "strconv"

// Every message a client can see from this package: the proxy's own
// refusals, sent before or instead of any command.
const (
	msgMaxClients = "-ERR max number of clients reached\r\n"
	msgInternal   = "ERR internal error"
	msgBadHeader  = "ERR Protocol error: invalid request header"
)

func errTooLarge(max int64) string {
	return "ERR Protocol error: request larger than max_request_bytes (" + strconv.FormatInt(max, 10) + ")"
}

func errReplyLimit(max int64) string {
	return "-ERR reply larger than server.max_client_reply_bytes (" + strconv.FormatInt(max, 10) + "): closing the connection\r\n"
}
