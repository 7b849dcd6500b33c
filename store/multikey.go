package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// MGetResult is the handle of a queued MGet.
type MGetResult struct {
	// raw is the one MGET outside a cluster, read raw against the
	// batch's room (rawRead) into vals.
	raw    *rawRead
	vals   []opResult
	groups []*redis.SliceCmd
	// at[i] locates keys[i]: group index and position in that group's reply.
	at [][2]int
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
	if r.raw != nil {
		if err := r.raw.Err(); err != nil {
			return nil, err
		}
		if !r.raw.scan.complete {
			return nil, errNoResult
		}
		if v := r.vals[i]; v.err != redis.Nil {
			return v.data, v.err
		}
		return nil, nil
	}
	g := r.groups[r.at[i][0]]
	vals, err := g.Result()
	if err != nil {
		return nil, err
	}
	if s, ok := vals[r.at[i][1]].(string); ok {
		return []byte(s), nil
	}
	return nil, nil
}

// MGet queues reading many keys, for the client's reply: outside a
// cluster each value is charged to the batch's room (SetRoom) as GetReply's. In a cluster the keys are split into one
// MGET per hash slot, so keys spread over the cluster never raise CROSSSLOT.
func (b *Batch) MGet(keys []string) *MGetResult {
	r := &MGetResult{at: make([][2]int, len(keys))}
	if b.s.cluster == nil {
		// Each key an operation of the raw read's own, bounded by the
		// batch's room.
		r.vals = make([]opResult, len(keys))
		ops := make([]op, len(keys))
		idx := make([]int, len(keys))
		for i := range keys {
			ops[i] = op{res: &r.vals[i], room: b.room}
			idx[i] = i
		}
		if len(keys) == 1 { // newRawRead's GET would answer WRONGTYPE
			r.raw = &rawRead{scan: readScanner{ops: ops, idx: idx}}
			r.raw.RawWriteToCmd = *redis.NewRawWriteToCmd(context.Background(), &r.raw.scan, "mget", keys[0])
		} else {
			r.raw = newRawRead(ops, idx, keys)
		}
		b.addMulti(r.raw, true, keys)
		return r
	}
	groupOf := make(map[int]int) // slot → group index
	var args [][]interface{}
	var groupKeys [][]string
	for i, k := range keys {
		slot := Slot(k)
		g, ok := groupOf[slot]
		if !ok {
			g = len(args)
			groupOf[slot] = g
			args = append(args, []interface{}{"mget"})
			groupKeys = append(groupKeys, nil)
		}
		r.at[i] = [2]int{g, len(args[g]) - 1}
		args[g] = append(args[g], k)
		groupKeys[g] = append(groupKeys[g], k)
	}
	for g, a := range args {
		r.groups = append(r.groups, b.mget(a, groupKeys[g]))
	}
	return r
}

func (b *Batch) mget(args []interface{}, keys []string) *redis.SliceCmd {
	cmd := redis.NewSliceCmd(context.Background(), args...)
	b.addMulti(cmd, true, keys)
	return cmd
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
