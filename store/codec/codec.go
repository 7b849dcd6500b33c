// Package codec turns the session payload a client sends into the bytes
// stored in Redis and back.
package codec

import (
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
)

// Codec validates and encodes session payloads.
type Codec interface {
	// Encode validates payload and returns the bytes to store. A payload the
	// codec refuses gives an error meant for the client.
	Encode(payload []byte) ([]byte, error)
	// Decode turns stored bytes back into what the client wrote.
	Decode(stored []byte) ([]byte, error)
	// JSON reports whether payloads are JSON, so the TTL policy may read
	// fields from them.
	JSON() bool
}

// Formats.
const (
	FormatJSON = "json"
	FormatRaw  = "raw"
)

// ErrTooLarge is returned for a payload over the size limit.
var ErrTooLarge = errors.New("payload too large")

// New returns the codec for format with a payload size limit (0: none).
func New(format string, maxPayloadBytes int) (Codec, error) {
	switch format {
	case FormatJSON, "":
		return JSON{MaxBytes: maxPayloadBytes}, nil
	case FormatRaw:
		return Raw{MaxBytes: maxPayloadBytes}, nil
	default:
		return nil, fmt.Errorf("unknown codec format %q", format)
	}
}

// JSON stores the session JSON as given, after checking it is an object.
type JSON struct{ MaxBytes int }

var _ Codec = JSON{}

// Encode checks payload is one JSON object.
func (c JSON) Encode(payload []byte) ([]byte, error) {
	if c.MaxBytes > 0 && len(payload) > c.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, max_payload_bytes is %d", ErrTooLarge, len(payload), c.MaxBytes)
	}
	if !gjson.ValidBytes(payload) {
		return nil, errors.New("not valid JSON")
	}
	if !gjson.ParseBytes(payload).IsObject() {
		return nil, errors.New("not a JSON object")
	}
	return payload, nil
}

// Decode returns stored as it is.
func (JSON) Decode(stored []byte) ([]byte, error) { return stored, nil }

// JSON is true.
func (JSON) JSON() bool { return true }

// Raw stores any bytes (PHP or Ruby marshalled sessions).
type Raw struct{ MaxBytes int }

var _ Codec = Raw{}

// Encode only enforces the size limit.
func (c Raw) Encode(payload []byte) ([]byte, error) {
	if c.MaxBytes > 0 && len(payload) > c.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, max_payload_bytes is %d", ErrTooLarge, len(payload), c.MaxBytes)
	}
	return payload, nil
}

// Decode returns stored as it is.
func (Raw) Decode(stored []byte) ([]byte, error) { return stored, nil }

// JSON is false.
func (Raw) JSON() bool { return false }
