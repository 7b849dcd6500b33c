package codec

import (
	"errors"
	"testing"
)

func TestJSONEncode(t *testing.T) {
	c := JSON{MaxBytes: 64}
	tests := []struct {
		payload string
		wantErr string
	}{
		{`{"cookie":{"path":"/"},"n":1}`, ""},
		{` {"a":[1,2,3]} `, ""},
		{`{}`, ""},
		{`[1,2]`, "not a JSON object"},
		{`"str"`, "not a JSON object"},
		{`{"a":`, "not valid JSON"},
		{`TOMBSTONE`, "not valid JSON"},
		{``, "not valid JSON"},
	}
	for _, tt := range tests {
		got, err := c.Encode([]byte(tt.payload))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Encode(%q): %v", tt.payload, err)
		case tt.wantErr == "" && string(got) != tt.payload:
			t.Errorf("Encode(%q) = %q: json stores the payload as sent", tt.payload, got)
		case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
			t.Errorf("Encode(%q) error = %v, want %q", tt.payload, err, tt.wantErr)
		}
	}
}

func TestMaxPayloadBytes(t *testing.T) {
	big := []byte(`{"a":"` + string(make([]byte, 100)) + `"}`)
	for _, c := range []Codec{JSON{MaxBytes: 64}, Raw{MaxBytes: 64}} {
		if _, err := c.Encode(big); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%T: error = %v, want ErrTooLarge", c, err)
		}
	}
}

func TestRawAcceptsAnyBytes(t *testing.T) {
	php := []byte("user|s:5:\"alice\";")
	got, err := Raw{}.Encode(php)
	if err != nil || string(got) != string(php) {
		t.Fatalf("Encode = %q, %v", got, err)
	}
}

func TestNew(t *testing.T) {
	if _, err := New("xml", 0); err == nil {
		t.Fatal("New(xml) succeeded")
	}
	if c, _ := New("raw", 0); c.JSON() {
		t.Fatal("raw codec claims JSON payloads")
	}
}
