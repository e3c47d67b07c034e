package normalize

import (
	"strings"
	"sync"

	"github.com/ua-parser/uap-go/uaparser"
)

// uaResult is what SEKOIA's engine derives from user_agent.original (rule
// R9, uap-core semantics): families are "Other" when unknown; versions are
// major.minor.patch as far as they go, "" when there is none.
type uaResult struct {
	name, version, osName, osVersion, deviceName string
}

// uapParser compiles uap-core's regular expressions once, in the first
// [New].
var uapParser = sync.OnceValue(func() *uaparser.Parser {
	p, err := uaparser.New(uaparser.WithCacheSize(1))
	if err != nil {
		panic("normalize: uap-go: " + err.Error())
	}
	return p
})

// maxUALength bounds the user-agents parsed; longer ones are cut first
// (the regular expressions look at the start of the string).
const maxUALength = 512

func parseUserAgent(ua string) uaResult {
	if len(ua) > maxUALength {
		ua = ua[:maxUALength]
	}
	p := uapParser()
	u, o, d := p.ParseUserAgent(ua), p.ParseOs(ua), p.ParseDevice(ua)
	return uaResult{
		name:       u.Family,
		version:    joinVersion(u.Major, u.Minor, u.Patch),
		osName:     o.Family,
		osVersion:  joinVersion(o.Major, o.Minor, o.Patch),
		deviceName: d.Family,
	}
}

// joinVersion joins version parts with dots, stopping at the first empty one.
func joinVersion(parts ...string) string {
	n := 0
	for n < len(parts) && parts[n] != "" {
		n++
	}
	return strings.Join(parts[:n], ".")
}

// uaCache is a bounded cache of parsed user-agents keyed by the string,
// safe for concurrent use. It keeps two generations: when the current one
// is full it becomes the previous one, and entries used again move back,
// so that frequent user-agents stay while the memory stays under two
// generations' worth.
type uaCache struct {
	mu   sync.RWMutex
	size int
	cur  map[string]*uaResult
	prev map[string]*uaResult
}

func newUACache(size int) *uaCache {
	return &uaCache{size: size, cur: make(map[string]*uaResult)}
}

// parse returns the parsed user-agent, from the cache when it is there.
func (c *uaCache) parse(ua string) *uaResult {
	c.mu.RLock()
	r, ok := c.cur[ua]
	c.mu.RUnlock()
	if ok {
		return r
	}
	c.mu.Lock()
	r, ok = c.prev[ua]
	c.mu.Unlock()
	key := strings.Clone(ua) // ua may point into a record's memory
	if !ok {
		v := parseUserAgent(key)
		r = &v
	}
	c.mu.Lock()
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[string]*uaResult, c.size)
	}
	c.cur[key] = r
	c.mu.Unlock()
	return r
}
