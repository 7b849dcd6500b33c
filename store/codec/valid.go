package codec

import (
	"bytes"
	"encoding/json"

	"github.com/tidwall/gjson"
)

// maxGjsonDepth is the most '[' and '{' a payload may hold for gjson's
// validator to judge it. That validator recurses once per level of nesting
// on the goroutine's stack: 8 MiB of '[' (one SESS.FSET value under the
// default max_request_bytes) grew the proxy by more than half a gigabyte,
// and 16 MiB overflowed the stack, a fatal error no recover catches. The
// count bounds the depth from above (brackets inside strings count too),
// and bytes.Count is vectorised, so a session pays a few nanoseconds for it.
const maxGjsonDepth = 4096

// ValidJSON reports whether p is one JSON value, with the verdict of
// encoding/json.Valid: nested at most 10,000 deep, strings not checked for
// UTF-8. gjson's validator, several times faster, judges payloads with few
// brackets; the standard library's, whose scanner keeps its own stack,
// judges the rest (FuzzValidate holds the two to the same verdict).
func ValidJSON(p []byte) bool {
	if bytes.Count(p, []byte{'['})+bytes.Count(p, []byte{'{'}) <= maxGjsonDepth {
		return gjson.ValidBytes(p)
	}
	return json.Valid(p)
}
