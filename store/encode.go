package store

import (
	"encoding/json"
	"reflect"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/raywatch/raywatch/rules/alert"
)

// encodeAlert encodes a as json.Marshal does, byte for byte, but encodes
// each event document (the alert's and its samples') once: a grouped alert
// is rewritten at every record folded into it, with the same up to ten
// sample events each time, and encoding those maps again and again was
// most of the cost of a commit.
func (s *Store) encodeAlert(a *alert.Alert) ([]byte, error) {
	head, err := json.Marshal(&alertHead{
		ID: a.ID, Rule: a.Rule, Count: a.Count, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen,
		Status: a.Status, Intake: a.Intake, Dataset: a.Dataset, RecordKey: a.RecordKey,
		Group: a.Group, Retro: a.Retro, Replayed: a.Replayed, Matches: a.Matches,
	})
	if err != nil {
		return nil, err
	}
	// The documents are spliced in as encoded: json.Marshal would
	// re-validate and compact every json.RawMessage, which costs about as
	// much as encoding them.
	buf := make([]byte, 0, 4096)
	buf = append(buf, head[:len(head)-1]...)
	buf = append(buf, `,"event":`...)
	if buf, err = s.docs.appendDoc(buf, a.Event); err != nil {
		return nil, err
	}
	if len(a.Samples) > 0 {
		buf = append(buf, `,"samples":[`...)
		for i, sm := range a.Samples {
			if i > 0 {
				buf = append(buf, ',')
			}
			k, err := json.Marshal(sm.RecordKey)
			if err != nil {
				return nil, err
			}
			t, err := json.Marshal(sm.Time)
			if err != nil {
				return nil, err
			}
			buf = append(buf, `{"record_key":`...)
			buf = append(buf, k...)
			buf = append(buf, `,"time":`...)
			buf = append(buf, t...)
			buf = append(buf, `,"event":`...)
			if buf, err = s.docs.appendDoc(buf, sm.Event); err != nil {
				return nil, err
			}
			buf = append(buf, '}')
		}
		buf = append(buf, ']')
	}
	if len(a.StatusHistory) > 0 {
		h, err := json.Marshal(a.StatusHistory)
		if err != nil {
			return nil, err
		}
		buf = append(buf, `,"status_history":`...)
		buf = append(buf, h...)
	}
	if a.StatusHistoryDropped != 0 {
		buf = append(buf, `,"status_history_dropped":`...)
		buf = strconv.AppendInt(buf, int64(a.StatusHistoryDropped), 10)
	}
	return append(buf, '}'), nil
}

// alertHead is the start of alert.Alert's JSON form, up to Matches; the
// fields after it (Event, Samples, StatusHistory, StatusHistoryDropped)
// are written by
// encodeAlert. TestAlertJSONMirrors keeps the two in step.
type alertHead struct {
	ID        string            `json:"id"`
	Rule      alert.RuleRef     `json:"rule"`
	Count     int               `json:"count"`
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
	Status    string            `json:"status"`
	Intake    string            `json:"intake"`
	Dataset   string            `json:"dataset"`
	RecordKey string            `json:"record_key"`
	Group     map[string]string `json:"group,omitempty"`
	Retro     bool              `json:"retro,omitempty"`
	Replayed  bool              `json:"replayed,omitempty"`
	Matches   []alert.Match     `json:"matches"`
}

// maxEncodedDocBytes bounds the JSON that docCache keeps. What an entry
// really holds is a few times that: the document's map, and the strings
// it shares with other records of its normalizer's arena.
const maxEncodedDocBytes = 4 << 20

// docCache keeps the JSON of event documents by the identity of their map.
// Event documents are never modified once made (normalize.Event.Doc,
// decodeAlert), and an entry holds its map, so the address cannot be
// reused for another map while the entry exists.
type docCache struct {
	mu    sync.Mutex
	m     map[unsafe.Pointer]encodedDoc
	bytes int // of the JSON held
}

type encodedDoc struct {
	doc map[string]any
	enc []byte
}

// appendDoc appends the JSON of doc ("null" for nil) to buf.
func (c *docCache) appendDoc(buf []byte, doc map[string]any) ([]byte, error) {
	if doc == nil {
		return append(buf, "null"...), nil
	}
	key := reflect.ValueOf(doc).UnsafePointer()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return append(buf, e.enc...), nil
	}
	enc, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[unsafe.Pointer]encodedDoc{}
	}
	if _, ok := c.m[key]; !ok {
		for k, e := range c.m { // evict at random
			if c.bytes+len(enc) <= maxEncodedDocBytes {
				break
			}
			delete(c.m, k)
			c.bytes -= len(e.enc)
		}
		c.m[key] = encodedDoc{doc: doc, enc: enc}
		c.bytes += len(enc)
	}
	c.mu.Unlock()
	return append(buf, enc...), nil
}
