package ioc

import (
	"hash/maphash"
	"math/bits"
)

// The indexes of a [Set] are open-addressing hash tables of integers only:
// no strings, no pointers. A set of a million indicators then costs the
// garbage collector nothing to scan, and a lookup is one hash and, most of
// the time, one cache line.

// tableSize returns the number of slots for n keys: a power of two, at
// least 8, filled to at most about 60%.
func tableSize(n int) int {
	n += n*2/3 + 1
	if n < 8 {
		n = 8
	}
	return 1 << bits.Len(uint(n-1))
}

// strTable maps byte-string keys to uint32 values. Keys are copied into one
// arena; a slot holds the top 32 bits of the key's hash and 1 + the key's
// number, so that most probes that miss never look at a key.
type strTable struct {
	seed  maphash.Seed
	slots []uint64 // hash>>32<<32 | key number+1; 0 is empty
	mask  uint64
	arena []byte   // the keys, back to back
	ends  []uint32 // ends[i] is where key i ends in arena; it starts at ends[i-1]
	vals  []uint32
}

func newStrTable(seed maphash.Seed, n int) *strTable {
	size := tableSize(n)
	return &strTable{
		seed:  seed,
		slots: make([]uint64, size),
		mask:  uint64(size - 1),
		ends:  make([]uint32, 0, n),
		vals:  make([]uint32, 0, n),
	}
}

func (t *strTable) key(i uint32) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.arena[start:t.ends[i]]
}

// bytesOrString is a key's type.
type bytesOrString interface{ ~string | ~[]byte }

// find returns the slot of key in t (h is its hash) and whether it holds
// the key; when it does not, the slot is the empty one where key would go.
func find[K bytesOrString](t *strTable, h uint64, key K) (uint64, bool) {
	tag := h &^ (1<<32 - 1)
	for pos := h & t.mask; ; pos = (pos + 1) & t.mask {
		s := t.slots[pos]
		if s == 0 {
			return pos, false
		}
		if s&^(1<<32-1) == tag && string(t.key(uint32(s)-1)) == string(key) {
			return pos, true
		}
	}
}

// get returns the value of key in t; h is its hash.
func get[K bytesOrString](t *strTable, h uint64, key K) (uint32, bool) {
	pos, ok := find(t, h, key)
	if !ok {
		return 0, false
	}
	return t.vals[uint32(t.slots[pos])-1], true
}

// put sets the value of key (hash h) to v and returns the value it
// replaces, if any.
func (t *strTable) put(h uint64, key string, v uint32) (old uint32, replaced bool) {
	pos, ok := find(t, h, key)
	if ok {
		i := uint32(t.slots[pos]) - 1
		old, t.vals[i] = t.vals[i], v
		return old, true
	}
	if (len(t.ends)+1)*5 > len(t.slots)*3 {
		t.grow()
		pos, _ = find(t, h, key)
	}
	t.arena = append(t.arena, key...)
	t.ends = append(t.ends, uint32(len(t.arena)))
	t.vals = append(t.vals, v)
	t.slots[pos] = h&^(1<<32-1) | uint64(len(t.ends))
	return 0, false
}

// grow doubles the slots, hashing the keys again.
func (t *strTable) grow() {
	t.slots = make([]uint64, 2*len(t.slots))
	t.mask = uint64(len(t.slots) - 1)
	for i := range t.ends {
		k := t.key(uint32(i))
		h := maphash.Bytes(t.seed, k)
		pos, _ := find(t, h, k)
		t.slots[pos] = h&^(1<<32-1) | uint64(i+1)
	}
}

// compact drops the spare capacity of the arena.
func (t *strTable) compact() {
	t.arena = append([]byte(nil), t.arena...)
}

// u32Table maps uint32 keys (IPv4 addresses) to uint32 values.
type u32Table struct {
	slots []uint64 // key<<32 | value+1; 0 is empty
	shift uint
	n     int
}

func newU32Table(n int) *u32Table {
	t := new(u32Table)
	t.alloc(tableSize(n))
	return t
}

func (t *u32Table) alloc(size int) {
	t.slots = make([]uint64, size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
}

func (t *u32Table) find(k uint32) (uint64, bool) {
	mask := uint64(len(t.slots) - 1)
	for pos := (uint64(k) * 0x9e3779b97f4a7c15) >> t.shift; ; pos = (pos + 1) & mask {
		s := t.slots[pos]
		if s == 0 {
			return pos, false
		}
		if uint32(s>>32) == k {
			return pos, true
		}
	}
}

// get returns the value of k; a nil table has none.
func (t *u32Table) get(k uint32) (uint32, bool) {
	if t == nil {
		return 0, false
	}
	pos, ok := t.find(k)
	return uint32(t.slots[pos]) - 1, ok
}

// put sets the value of k to v (v < 1<<32-1) and returns the value it
// replaces, if any.
func (t *u32Table) put(k, v uint32) (old uint32, replaced bool) {
	pos, ok := t.find(k)
	if ok {
		old = uint32(t.slots[pos]) - 1
	} else if t.n++; t.n*5 > len(t.slots)*3 {
		old := t.slots
		t.alloc(2 * len(old))
		for _, s := range old {
			if s != 0 {
				p, _ := t.find(uint32(s >> 32))
				t.slots[p] = s
			}
		}
		pos, _ = t.find(k)
	}
	t.slots[pos] = uint64(k)<<32 | uint64(v+1)
	return old, ok
}

// bitFilter is a one-hash Bloom filter keyed by the top bits of a hash: a
// key that was added always passes; one that was not passes with a
// probability of at most 1/24.
type bitFilter struct {
	words []uint64
	shift uint
}

func newBitFilter(n int) *bitFilter {
	size := tableSize(16 * n / 64)
	return &bitFilter{words: make([]uint64, size), shift: uint(64 - bits.TrailingZeros(uint(size*64)))}
}

func (f *bitFilter) add(h uint64) {
	b := h >> f.shift
	f.words[b>>6] |= 1 << (b & 63)
}

func (f *bitFilter) has(h uint64) bool {
	b := h >> f.shift
	return f.words[b>>6]&(1<<(b&63)) != 0
}

// sampleHash hashes the length of s and a few of its bytes: cheaper than
// hashing a long string, and enough for a [bitFilter] in front of an exact
// lookup.
func sampleHash(s string) uint64 {
	n := len(s)
	if n == 0 {
		return 0
	}
	x := uint64(n) | uint64(s[n/4])<<16 | uint64(s[n/3])<<24 | uint64(s[n/2])<<32 |
		uint64(s[2*n/3])<<40 | uint64(s[n-2+n%2])<<48 | uint64(s[n-1])<<56
	return mix(x)
}

// md5Hash hashes the first 8 digits of a hexadecimal MD5 (32 digits, of
// either case) for a [bitFilter].
func md5Hash(s string) uint64 {
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	return mix(x | 0x2020202020202020) // lower case letters, digits unchanged
}

// mix is the finaliser of MurmurHash3.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb93fe53b9d05
	x ^= x >> 33
	return x
}
