package store

import "testing"

func TestUpstreamInfoSums(t *testing.T) {
	info := UpstreamInfo{Fields: map[string]string{}}
	for _, text := range []string{
		"# Memory\r\nused_memory:1000\r\nused_memory_human:1000B\r\nmaxmemory_policy:allkeys-lru\r\n# Keyspace\r\ndb0:keys=5,expires=3,avg_ttl=10\r\ndb1:keys=7,expires=0,avg_ttl=0\r\n",
		"# Memory\r\nused_memory:24\r\nmaxmemory_policy:noeviction\r\n# Stats\r\nkeyspace_hits:4\r\n# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\n",
	} {
		info.add(text, 0)
	}
	if info.Fields["used_memory"] != "1024" || info.Fields["maxmemory_policy"] != "allkeys-lru" || info.Fields["keyspace_hits"] != "4" {
		t.Errorf("fields = %v", info.Fields)
	}
	if _, ok := info.Fields["used_memory_human"]; ok {
		t.Errorf("used_memory_human kept: the proxy formats its own from the sum")
	}
	if info.Keys != 6 || info.Expires != 4 {
		t.Errorf("keys, expires = %d, %d; want 6, 4 (db0 only)", info.Keys, info.Expires)
	}
}
