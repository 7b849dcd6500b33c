package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// MGetResult is the handle of a queued MGet.
type MGetResult struct {
	// reads are its MGETs (one outside a cluster, one per hash slot in
	// one), each read raw against the batch's room (rawRead) into vals.
	reads []*rawRead
	vals  []opResult
	// readOf[i] is the index in reads of the MGET that reads keys[i].
	readOf []int
}

// Session is the i-th key's value read as a session: ErrNotFound when
// missing or tombstoned.
func (r *MGetResult) Session(i int) ([]byte, error) {
	v, err := r.Raw(i)
	if err != nil {
		return nil, err
	}
	if v == nil || string(v) == Tombstone {
		return nil, ErrNotFound
	}
	return v, nil
}

// Raw is the i-th key's value as stored (nil when missing).
func (r *MGetResult) Raw(i int) ([]byte, error) {
	read := r.reads[r.readOf[i]]
	if err := read.Err(); err != nil {
		return nil, err
	}
	if !read.scan.complete {
		return nil, errNoResult
	}
	if v := r.vals[i]; v.err != redis.Nil {
		return v.data, v.err
	}
	return nil, nil
}

// MGet queues reading many keys, for the client's reply, each value
// charged to the batch's room (SetRoom) as GetReply's. In a cluster the
// keys are split into one MGET per hash slot, so keys spread over the
// cluster never raise CROSSSLOT.
func (b *Batch) MGet(keys []string) *MGetResult {
	r := &MGetResult{vals: make([]opResult, len(keys)), readOf: make([]int, len(keys))}
	// Each key an operation of its raw read's own, bounded by the room.
	ops := make([]op, len(keys))
	for i := range keys {
		ops[i] = op{res: &r.vals[i], room: b.room}
	}
	if b.s.cluster == nil {
		r.reads = []*rawRead{b.mgetRaw(ops, seq(len(keys)), keys)}
		return r
	}
	groupOf := make(map[int]int) // slot → index in reads
	var idx [][]int
	var groupKeys [][]string
	for i, k := range keys {
		slot := Slot(k)
		g, ok := groupOf[slot]
		if !ok {
			g = len(idx)
			groupOf[slot] = g
			idx = append(idx, nil)
			groupKeys = append(groupKeys, nil)
		}
		r.readOf[i] = g
		idx[g] = append(idx[g], i)
		groupKeys[g] = append(groupKeys[g], k)
	}
	for g := range idx {
		r.reads = append(r.reads, b.mgetRaw(ops, idx[g], groupKeys[g]))
	}
	return r
}

// mgetRaw queues one MGET of keys, read raw into ops[idx[i]] for keys[i].
func (b *Batch) mgetRaw(ops []op, idx []int, keys []string) *rawRead {
	var raw *rawRead
	if len(keys) == 1 { // newRawRead's GET would answer WRONGTYPE
		raw = &rawRead{scan: readScanner{ops: ops, idx: idx}}
		raw.RawWriteToCmd = *redis.NewRawWriteToCmd(context.Background(), &raw.scan, "mget", &keys[0])
	} else {
		raw = newRawRead(ops, idx, keys)
	}
	b.addMulti(raw, true, keys)
	return raw
}

// seq is 0, 1, …, n-1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// Slot is the Redis Cluster hash slot of key, honouring {hash tags}.
func Slot(key string) int {
	if s := indexByte(key, '{'); s >= 0 {
		if e := indexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % 16384)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster uses for slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for j := 0; j < 8; j++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
