package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

const (
	keySize     = 32 // AES-256
	nonceSize   = 12 // the GCM standard nonce; random per value
	tagSize     = 16
	maxKeyIDLen = 16
)

// key is one entry of encrypt_keys.
type key struct {
	id   string
	aead cipher.AEAD
}

// keyring holds the configured keys; the first encrypts, all decrypt, so a
// new key can be put first while values under the old one stay readable.
type keyring []key

// parseKeys parses encrypt_keys entries of the form "id:base64-key". Error
// messages name the entry by index and never repeat the key material.
func parseKeys(specs []string) (keyring, error) {
	ring := make(keyring, 0, len(specs))
	for i, spec := range specs {
		id, b64, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf(`encrypt_keys[%d]: want "id:base64-key"`, i)
		}
		if !validKeyID(id) {
			return nil, fmt.Errorf("encrypt_keys[%d]: key id %q must be 1..%d characters of A-Z a-z 0-9 _ -", i, id, maxKeyIDLen)
		}
		for j, k := range ring {
			if k.id == id {
				return nil, fmt.Errorf("encrypt_keys[%d]: duplicate key id %q (also encrypt_keys[%d])", i, id, j)
			}
		}
		raw, ok := decodeBase64(b64)
		if !ok {
			return nil, fmt.Errorf("encrypt_keys[%d]: key is not valid base64", i)
		}
		if len(raw) != keySize {
			return nil, fmt.Errorf("encrypt_keys[%d]: key must be %d bytes after base64 decoding, got %d", i, keySize, len(raw))
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("encrypt_keys[%d]: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("encrypt_keys[%d]: %w", i, err)
		}
		ring = append(ring, key{id: id, aead: aead})
	}
	return ring, nil
}

func validKeyID(id string) bool {
	if len(id) < 1 || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// decodeBase64 accepts standard and URL-safe alphabets, padded or not:
// `openssl rand -base64 32` and most secret managers produce one of them.
func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// lookup finds the key a value names.
func (r keyring) lookup(id []byte) (cipher.AEAD, bool) {
	for _, k := range r {
		if k.id == string(id) {
			return k.aead, true
		}
	}
	return nil, false
}

// seal appends the key id, a fresh nonce and the ciphertext of body to dst,
// which holds exactly the header written so far (magic, version, flags,
// created).
//
// GCM authenticates the header up to the nonce except the created digits.
// Flags, key id and nonce cannot be altered without the value failing to
// decrypt, so nobody can make a reader skip decompression or read the body
// as another format; the created field is left out on purpose so that a Lua
// script in Redis, which has no key, can splice a new creation time.
// Created is therefore not authenticated: someone who can write to Redis can
// move it (as they could delete or expire the key anyway).
func (r keyring) seal(dst, body []byte) ([]byte, error) {
	k := r[0]
	rest := len(dst) // offCreated, or createdEnd with the created field
	dst = append(dst, byte(len(k.id)))
	dst = append(dst, k.id...)
	nonceStart := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	nonce := dst[nonceStart:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt: read random nonce: %w", err)
	}
	aad := make([]byte, 0, offCreated+len(dst)-rest)
	aad = append(append(aad, dst[:offCreated]...), dst[rest:]...)
	return k.aead.Seal(dst, nonce, body, aad), nil
}

// open decrypts the body of h into dst.
func (r keyring) open(dst []byte, h header) ([]byte, error) {
	aead, ok := r.lookup(h.keyID)
	if !ok {
		return nil, corrupt("encrypted with key id %q, which is not in encrypt_keys", h.keyID)
	}
	aad := make([]byte, 0, len(h.aadHead)+len(h.aadTail))
	aad = append(append(aad, h.aadHead...), h.aadTail...)
	out, err := aead.Open(dst, h.nonce, h.body, aad)
	if err != nil {
		return nil, corrupt("decrypt with key id %q: %w", h.keyID, err)
	}
	return out, nil
}
