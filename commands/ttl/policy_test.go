package ttl

import (
	"strconv"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	p := Policy{
		Default: 24 * time.Hour, Min: time.Second, Max: 30 * 24 * time.Hour, FromCookie: true,
		Rules: []Rule{
			{Field: "user.role", Equals: "admin", TTL: 30 * time.Minute},
			{Field: "user.role", Equals: "guest", TTL: time.Hour},
		},
		Now: func() time.Time { return now },
	}
	in := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	tests := []struct {
		name     string
		payload  string
		explicit time.Duration
		want     Decision
	}{
		{"default", `{"a":1}`, 0, Decision{TTL: 24 * time.Hour}},
		{"no payload", ``, 0, Decision{TTL: 24 * time.Hour}},
		{"explicit wins over everything", `{"user":{"role":"admin"}}`, 10 * time.Minute, Decision{TTL: 10 * time.Minute}},
		{"explicit clamped to min", `{}`, time.Millisecond, Decision{TTL: time.Second, Clamped: BoundMin}},
		{"explicit clamped to max", `{}`, 90 * 24 * time.Hour, Decision{TTL: 30 * 24 * time.Hour, Clamped: BoundMax}},
		{"first matching rule", `{"user":{"role":"admin"},"cookie":{"expires":"` + in(2*time.Hour) + `"}}`, 0, Decision{TTL: 30 * time.Minute}},
		{"second rule", `{"user":{"role":"guest"}}`, 0, Decision{TTL: time.Hour}},
		{"rule value must match", `{"user":{"role":"editor"}}`, 0, Decision{TTL: 24 * time.Hour}},
		{"cookie iso", `{"cookie":{"expires":"` + in(2*time.Hour) + `"}}`, 0, Decision{TTL: 2 * time.Hour}},
		{"cookie epoch ms", `{"cookie":{"expires":` + strconv.FormatInt(now.Add(3*time.Hour).UnixMilli(), 10) + `}}`, 0, Decision{TTL: 3 * time.Hour}},
		{"cookie null uses default", `{"cookie":{"expires":null}}`, 0, Decision{TTL: 24 * time.Hour}},
		{"cookie past is expired", `{"cookie":{"expires":"` + in(-time.Minute) + `"}}`, 0, Decision{Expired: true}},
		{"cookie beyond max clamped", `{"cookie":{"expires":"` + in(90*24*time.Hour) + `"}}`, 0, Decision{TTL: 30 * 24 * time.Hour, Clamped: BoundMax}},
		{"cookie unparseable uses default", `{"cookie":{"expires":"tomorrow"}}`, 0, Decision{TTL: 24 * time.Hour}},
		{"cookie not an object uses default", `{"cookie":"expires"}`, 0, Decision{TTL: 24 * time.Hour}},
		{"cookie without expires uses default", `{"cookie":{"path":"/"},"n":1}`, 0, Decision{TTL: 24 * time.Hour}},
		{"cookie expires key escaped", `{"cookie":{"expir\u0065s":"` + in(2*time.Hour) + `"}}`, 0, Decision{TTL: 2 * time.Hour}},
		{"first cookie decides", `{"cookie":{"path":"/"},"pad":"xxxx","cookie":{"expires":"` + in(2*time.Hour) + `"}}`, 0, Decision{TTL: 24 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var payload []byte
			if tt.payload != "" {
				payload = []byte(tt.payload)
			}
			if got := p.Decide(payload, tt.explicit); got != tt.want {
				t.Fatalf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFromCookieOff(t *testing.T) {
	p := Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour}
	got := p.Decide([]byte(`{"cookie":{"expires":"2000-01-01T00:00:00Z"}}`), 0)
	if got != (Decision{TTL: time.Hour}) {
		t.Fatalf("Decide = %+v, want the default: from_cookie is off", got)
	}
}

func TestExplicitAndUntil(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := Policy{Default: time.Hour, Min: time.Second, Max: 2 * time.Hour, Now: func() time.Time { return now }}
	if got := p.Explicit(0); !got.Expired {
		t.Errorf("Explicit(0) = %+v, want expired", got)
	}
	if got := p.Until(now.Add(-time.Second)); !got.Expired {
		t.Errorf("Until(past) = %+v, want expired", got)
	}
	if got := p.Until(now.Add(90 * time.Minute)); got != (Decision{TTL: 90 * time.Minute}) {
		t.Errorf("Until(+90m) = %+v", got)
	}
}
