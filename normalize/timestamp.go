package normalize

import (
	"math"
	"strconv"
	"time"
)

// parseTimestamp returns the instant of a Logpush timestamp value in any of
// the formats a job's timestamps= option produces (logpush.md §2.10): an
// integer or a string of digits in seconds, milliseconds, microseconds or
// nanoseconds told apart by magnitude, or an RFC 3339 string with 0 to 9
// fractional digits; and, as other tools write Cloudflare records, RFC
// 3339 with a space for the T, or "YYYY-MM-DD HH:MM:SS[.fff]" without a
// zone, taken as UTC. v must not be empty.
func (b *builder) parseTimestamp(v *jvalue, field string) (time.Time, error) {
	var text string
	switch v.t {
	case jNumber, jString:
		text = v.s
	default:
		return time.Time{}, fieldErr(field, "want timestamp (number or string), got %s", typeName(v))
	}
	if validNumber(text) {
		t, ok := epochTime(text)
		if !ok {
			return time.Time{}, fieldErr(field, "timestamp %s out of range", text)
		}
		return t, nil
	}
	if v.Type() == jString {
		if t, err := parseTimeText(text); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fieldErr(field, "want Unix or RFC 3339 timestamp, got %q", text)
}

// epochTime converts the JSON number text s, counted from the Unix epoch in
// s, ms, µs or ns (whichever puts it after 1973 for today's values), to a
// time.
func epochTime(s string) (time.Time, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch a := abs(n); {
		case a < 1e11:
			return time.Unix(n, 0).UTC(), true
		case a < 1e14:
			return time.UnixMilli(n).UTC(), true
		case a < 1e17:
			return time.UnixMicro(n).UTC(), true
		default:
			return time.Unix(0, n).UTC(), true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.Abs(f) >= 1e19 {
		return time.Time{}, false
	}
	switch a := math.Abs(f); {
	case a < 1e11:
	case a < 1e14:
		f /= 1e3
	case a < 1e17:
		f /= 1e6
	default:
		f /= 1e9
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), true
}

// abs returns |n|, or math.MaxInt64 for math.MinInt64.
func abs(n int64) int64 {
	switch {
	case n == math.MinInt64:
		return math.MaxInt64
	case n < 0:
		return -n
	}
	return n
}

// Unix nanoseconds fit in an int64 between these instants.
var (
	minNano = time.Unix(0, math.MinInt64)
	maxNano = time.Unix(0, math.MaxInt64)
)

// parseRFC3339 parses an RFC 3339 time with 0 to 9 fractional digits and
// returns it in UTC.
func parseRFC3339(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// parseTimeText parses RFC 3339 (see parseRFC3339), also with a space for
// the T, and a date and time without a zone ("2022-05-07 18:53:12", with 0
// to 9 fractional digits), which it takes as UTC.
func parseTimeText(s string) (time.Time, error) {
	t, err := parseRFC3339(s)
	if err == nil || len(s) < len("2006-01-02 15:04:05") || s[10] != ' ' && s[10] != 'T' {
		return t, err
	}
	b := []byte(s)
	b[10] = 'T'
	if t, err2 := time.Parse(time.RFC3339Nano, string(b)); err2 == nil {
		return t.UTC(), nil
	}
	if t, err2 := time.Parse("2006-01-02T15:04:05.999999999", string(b)); err2 == nil {
		return t, nil // no zone: UTC
	}
	return time.Time{}, err
}

// formatTimestamp formats t the way SEKOIA's date.parse does (rule R10): UTC,
// six fractional digits when the microseconds are not zero and none when they
// are, microseconds taken from float64 seconds and rounded half to even like
// Python's datetime.fromtimestamp.
func (b *builder) formatTimestamp(t time.Time) string {
	var buf [40]byte
	return b.strBytes(appendTimestamp(buf[:0], t))
}

// appendTimestamp appends t formatted as by formatTimestamp.
func appendTimestamp(out []byte, t time.Time) []byte {
	var sec, us float64
	if t.After(minNano) && t.Before(maxNano) {
		sec, us = math.Modf(float64(t.UnixNano()) / 1e9)
		us = math.RoundToEven(us * 1e6)
	} else {
		sec, us = float64(t.Unix()), math.RoundToEven(float64(t.Nanosecond())/1e3)
	}
	switch {
	case us >= 1e6:
		sec++
		us -= 1e6
	case us < 0:
		sec--
		us += 1e6
	}
	out = appendDateTime(out, int64(sec))
	if us != 0 {
		out = append(out, '.')
		m := int(us)
		for d := 100000; d > 0; d /= 10 {
			out = append(out, byte('0'+m/d%10))
		}
	}
	return append(out, 'Z')
}

// appendDateTime appends the UTC date and time of Unix second sec as
// 2006-01-02T15:04:05, without time.Format's generality.
func appendDateTime(out []byte, sec int64) []byte {
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days--
		rem += 86400
	}
	// Howard Hinnant's civil_from_days.
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	if y < 0 || y > 9999 {
		return time.Unix(sec, 0).UTC().AppendFormat(out, "2006-01-02T15:04:05")
	}
	out = append(out, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T')
	h, mi, se := rem/3600, rem/60%60, rem%60
	return append(out, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+se/10), byte('0'+se%10))
}
