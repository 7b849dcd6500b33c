package commands

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/sessproxy/sessproxy/store/codec"
	"github.com/tidwall/gjson"
)

// The multi-field commands answer every field from one pass over the
// session's top-level object. Looking each field up with gjson (and
// editing with sjson) scanned, and for writes copied, the whole session
// once per field: SESS.FMGET or SESS.FDEL of 4,000 fields against a 1 MiB
// session took 7-8 s of a core, and one 8 MiB request holds a million.
//
// The one-pass forms give exactly the answers and bytes of those per-field
// calls (fields_test.go holds them to it) on a valid JSON object, which is
// every session a JSON namespace stores. The reads answer anything else (a
// value written to Redis around the proxy) as gjson does. The writes
// refuse it (errStoredNotObject): field by field, sjson's edits of such
// text cost the whole value per field, and SESS.FSET of 20,000 pairs on a
// stored `{"a":1` took 4.5 s of a core (an 8 MiB request holds 600,000).

// errStoredNotObject refuses a field edit of a stored value that is not
// one JSON object.
var errStoredNotObject = errors.New(reasonStoredNotObject)

// topMember is one member of a top-level object, as offsets into its text:
// whitespace from after the preceding '{' or ',' to key, the member from
// key to valueEnd, whitespace from valueEnd to end (the ',' or '}' after).
type topMember struct {
	name                        string // the key unescaped, as gjson compares it
	space, key, value, valueEnd int
	end                         int
}

// topObject splits payload into its top-level members; false unless it is
// one valid JSON object. open and close are the offsets of its braces.
func topObject(payload []byte) (text string, open, close int, members []topMember, ok bool) {
	if !codec.ValidJSON(payload) {
		return "", 0, 0, nil, false
	}
	text = string(payload)
	open, close = 0, len(text)-1
	for isSpace(text[open]) {
		open++
	}
	for isSpace(text[close]) {
		close--
	}
	if text[open] != '{' {
		return "", 0, 0, nil, false
	}
	delim := open
	obj := gjson.Result{Type: gjson.JSON, Raw: text[open : close+1], Index: open}
	obj.ForEach(func(key, value gjson.Result) bool {
		m := topMember{name: key.Str, space: delim + 1, key: key.Index, value: value.Index, valueEnd: value.Index + len(value.Raw)}
		m.end = m.valueEnd
		for isSpace(text[m.end]) {
			m.end++
		}
		delim = m.end
		members = append(members, m)
		return true
	})
	return text, open, close, members, true
}

// isSpace reports JSON whitespace; valid JSON has no other bytes <= ' '
// outside strings.
func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// fieldValues answers SESS.FMGET: the JSON of each named top-level field
// ("" where there is none), the first member of that name where the
// session repeats one, as gjson.Get answers.
func fieldValues(payload []byte, fields []string) []string {
	values := make([]string, len(fields))
	if payload == nil {
		return values
	}
	if !codec.ValidJSON(payload) || firstByte(payload) != '{' {
		// Not a JSON object (a raw namespace's payload, or a value written
		// straight into Redis): it has no top-level fields. Looking each
		// field up in it, as before, cost a scan of the payload per
		// distinct field, many thousands in one request.
		return values
	}
	slots := make(map[string][]int, len(fields))
	for i, f := range fields {
		slots[f] = append(slots[f], i)
	}
	missing := len(slots)
	gjson.Parse(view(payload)).ForEach(func(key, value gjson.Result) bool {
		idx, ok := slots[key.Str]
		if !ok || values[idx[0]] != "" {
			return true
		}
		for _, i := range idx {
			values[i] = value.Raw
		}
		missing--
		return missing > 0
	})
	return values
}

// view is payload as a string without a copy (string(payload) copied a
// whole session for each read of a field). What gjson finds in it points
// into payload: the field readers write it into their reply before they
// return, and nothing changes payload meanwhile.
func view(payload []byte) string {
	return unsafe.String(unsafe.SliceData(payload), len(payload))
}

// firstByte is payload's first byte after whitespace, 0 if none.
func firstByte(payload []byte) byte {
	for _, b := range payload {
		if !isSpace(b) {
			return b
		}
	}
	return 0
}

// deleteFields answers SESS.FDEL: payload without the named top-level
// fields and how many members went. As sjson.DeleteBytes did per field,
// each name removes the first member of that name still there (a name
// given twice removes two members of a session that repeats it), a member
// goes with the ',' before it (the one after, for the first member), and
// the whitespace around stays where sjson left it.
func deleteFields(payload []byte, fields [][]byte) ([]byte, int64, error) {
	text, open, close, members, ok := topObject(payload)
	if !ok {
		return nil, 0, errStoredNotObject
	}
	byName := make(map[string][]int, len(members))
	for i, m := range members {
		byName[m.name] = append(byName[m.name], i)
	}
	// A doubly linked list of the members left; each owns a chain of
	// whitespace runs (spans): its own trailing run, then those of the
	// members deleted after it, which sjson left behind it.
	n := len(members)
	prev, next := make([]int, n), make([]int, n)
	spanNext, spanLast := make([]int, n), make([]int, n)
	for i := range members {
		prev[i], next[i], spanNext[i], spanLast[i] = i-1, i+1, -1, i
	}
	if n > 0 {
		next[n-1] = -1
	}
	head, last := 0, -1
	var removed int64
	for _, f := range fields {
		queue := byName[string(f)]
		if len(queue) == 0 {
			continue
		}
		i := queue[0]
		byName[string(f)] = queue[1:]
		removed++
		p, q := prev[i], next[i]
		switch {
		case p >= 0: // ",member" goes, its trailing whitespace stays behind p
			spanNext[spanLast[p]] = i
			spanLast[p] = spanLast[i]
		case q < 0: // the only member: '{' and its trailing whitespace stay
			last = i
		}
		if p >= 0 {
			next[p] = q
		} else {
			head = q
		}
		if q >= 0 {
			prev[q] = p
		}
	}
	if removed == 0 {
		return payload, 0, nil
	}
	spans := func(out []byte, i int) []byte {
		for ; i >= 0; i = spanNext[i] {
			out = append(out, text[members[i].valueEnd:members[i].end]...)
		}
		return out
	}
	out := make([]byte, 0, len(text))
	out = append(out, text[:open+1]...)
	if head < 0 {
		out = spans(out, last)
	}
	for i := head; i >= 0; i = next[i] {
		if i != head {
			out = append(out, ',')
		}
		out = append(out, text[members[i].space:members[i].valueEnd]...)
		out = spans(out, i)
	}
	return append(out, text[close:]...), removed, nil
}

// setFields answers SESS.FSET: payload with each named top-level field set
// to its JSON, as sjson.SetRawBytes did pair by pair: a field already there
// has its first member's value replaced in place, a new one is appended
// after the last member, and appending drops whitespace outside the
// braces. A field given twice ends with the later value, inside the
// whitespace around the earlier ones (sjson replaced only the value
// itself, see appendFieldValue).
func setFields(payload []byte, pairs [][]byte) ([]byte, int64, error) {
	text, open, close, members, ok := topObject(payload)
	if !ok {
		return nil, 0, errStoredNotObject
	}
	firstMember := make(map[string]int, len(members))
	for i := len(members) - 1; i >= 0; i-- {
		firstMember[members[i].name] = i
	}
	type newField struct {
		name   string
		values []int
	}
	set := make(map[int][]int)  // member -> its values' indexes in pairs
	var added []newField        // in the order first given
	addedAs := map[string]int{} // the name an added field reads back as -> first such
	for i := 0; i < len(pairs); i += 2 {
		name := string(pairs[i])
		if m, ok := firstMember[name]; ok {
			set[m] = append(set[m], i+1)
		} else if a, ok := addedAs[name]; ok {
			added[a].values = append(added[a].values, i+1)
		} else {
			added = append(added, newField{name: name, values: []int{i + 1}})
			if _, ok := addedAs[readBack(name)]; !ok {
				addedAs[readBack(name)] = len(added) - 1
			}
		}
	}
	size := len(text)
	for i := 1; i < len(pairs); i += 2 {
		size += len(pairs[i])
	}
	out := make([]byte, 0, size)
	from := 0
	for i, m := range members {
		if values, ok := set[i]; ok {
			out = append(out, text[from:m.value]...)
			out = appendFieldValue(out, pairs, values)
			from = m.valueEnd
		}
	}
	if len(added) == 0 {
		return append(out, text[from:]...), int64(len(pairs) / 2), nil
	}
	// sjson appends to gjson.Parse's text of the object: from '{' up to
	// the last '}', a ',' unless the object is empty.
	out = append(out, text[from:close]...)[open:]
	for i, a := range added {
		if i > 0 || len(members) > 0 {
			out = append(out, ',')
		}
		out = appendKey(out, a.name)
		out = append(out, ':')
		out = appendFieldValue(out, pairs, a.values)
	}
	return append(out, '}'), int64(len(pairs) / 2), nil
}

// readBack is the name gjson reads back from appendKey(name): name itself,
// but for bytes that are not UTF-8, which encoding/json writes as U+FFFD,
// so a second SESS.FSET of such a name appended another member.
func readBack(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRuneInString(name[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(name[i : i+n])
		}
		i += n
	}
	return b.String()
}

// appendFieldValue appends what sjson left of the values given one field,
// pairs[values[0]], pairs[values[1]]…: each replaced only the value inside
// the one before, so the last sits inside the whitespace of the others.
func appendFieldValue(dst []byte, pairs [][]byte, values []int) []byte {
	last := len(values) - 1
	for _, v := range values[:last] {
		dst = append(dst, pairs[v][:len(pairs[v])-len(trimLeftSpace(pairs[v]))]...)
	}
	dst = append(dst, pairs[values[last]]...)
	for i := last - 1; i >= 0; i-- {
		v := pairs[values[i]]
		dst = append(dst, v[len(trimRightSpace(v)):]...)
	}
	return dst
}

func trimLeftSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

func trimRightSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// appendKey appends name as a JSON string the way sjson writes a new key:
// verbatim unless it holds a control character, '"', '\' or a non-ASCII
// byte, then as encoding/json marshals it.
func appendKey(dst []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(name)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"')
}
