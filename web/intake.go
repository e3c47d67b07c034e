package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/raywatch/raywatch/normalize"
)

// Intake errors, each with its answer (see statusFor).
var (
	errInflatedTooLarge = errors.New("decompressed body too large")
	errTooManyLines     = errors.New("too many records")
	errBadGzip          = errors.New("bad gzip body")
	errEncoding         = errors.New("unsupported Content-Encoding")
	// errStorage marks a failure of the spool other than ErrBusy (a full
	// or failing disk): the batch is fine, the server cannot keep it now.
	errStorage = errors.New("cannot store the batch")
)

// storageDetail is the answer to a batch the spool failed to store. The
// spool's error names server paths: it goes to the log only.
const storageDetail = "cannot store the batch; retry later"

// storageRetry is the Retry-After, in seconds, of a storage failure.
const storageRetry = 30

// storageFailure marks an error of the spool as a storage failure, unless
// it is ErrBusy (over budget) or nil.
func storageFailure(err error) error {
	if err == nil || errors.Is(err, ErrBusy) {
		return err
	}
	return fmt.Errorf("%w: %w", errStorage, err)
}

// batchLimits bound one batch.
type batchLimits struct {
	MaxDecompressed int64
	MaxLines        int
}

// batchInfo is what reading a body tells about it.
type batchInfo struct {
	// ID is the hex SHA-256 of the intake name, a zero byte and the
	// decompressed body: a retried batch has the same ID even if its gzip
	// bytes differ.
	ID    string
	Bytes int64 // decompressed
	Lines int   // non-empty lines... counted as line breaks, plus an unterminated last line
	Gzip  bool
	// Probe is set for Logpush's validation upload.
	Probe bool
}

// readBatch reads a request body to its end, copying the bytes as sent to
// raw, and checks it: gzip (when contentEncoding says so or the body starts
// with gzip's magic bytes; multi-member allowed) or identity; the
// decompressed size is checked while inflating, so a gzip bomb stops at the
// limit. The decompressed bytes also go to decoded, when not nil. Errors
// wrap one of the intake errors above, or come from body or raw (an ErrBusy
// or errStorage from raw, an *http.MaxBytesError from body).
func readBatch(body io.Reader, contentEncoding, intake string, lim batchLimits, raw, decoded io.Writer) (batchInfo, error) {
	tee := io.TeeReader(body, raw)
	enc := strings.ToLower(strings.TrimSpace(contentEncoding))
	b, err := normalize.OpenBody(tee, strings.Contains(enc, "gzip"))
	if err != nil {
		return batchInfo{}, gzipError(err)
	}
	defer b.Close()
	gz := b.Gzip
	if !gz && enc != "" && enc != "identity" {
		return batchInfo{}, fmt.Errorf("%w %q (send gzip or identity)", errEncoding, contentEncoding)
	}
	var src io.Reader = b
	c := &batchCounter{h: sha256.New(), lim: lim, copy: decoded}
	c.h.Write([]byte(intake))
	c.h.Write([]byte{0})
	// One more byte than allowed tells "over the limit" from "at it".
	if _, err := io.Copy(c, io.LimitReader(src, lim.MaxDecompressed+1)); err != nil {
		if gz && !errors.Is(err, errInflatedTooLarge) && !errors.Is(err, errTooManyLines) {
			return batchInfo{}, gzipError(err)
		}
		return batchInfo{}, err
	}
	// Whatever the gzip stream did not need is still part of the request
	// (OpenBody's buffer has already passed it to raw).
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return batchInfo{}, err
	}
	info := batchInfo{ID: hex.EncodeToString(c.h.Sum(nil)), Bytes: c.n, Lines: c.lines, Gzip: gz}
	if c.n > 0 && c.last != '\n' {
		info.Lines++
	}
	if info.Lines > lim.MaxLines {
		return batchInfo{}, fmt.Errorf("%w: over %d lines", errTooManyLines, lim.MaxLines)
	}
	info.Probe = c.n <= int64(len(c.head)) && normalize.IsValidationProbe(c.head[:c.n])
	return info, nil
}

// gzipError classifies an error met while inflating.
func gzipError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, ErrBusy) || errors.Is(err, errStorage) {
		return err
	}
	return fmt.Errorf("%w: %v", errBadGzip, err)
}

// batchCounter hashes and measures a decompressed body as it streams by.
type batchCounter struct {
	h     hash.Hash
	lim   batchLimits
	n     int64
	lines int
	last  byte
	head  [257]byte // the start of the body, to recognise the validation probe
	copy  io.Writer // receives the body too, if not nil
}

func (c *batchCounter) Write(p []byte) (int, error) {
	if c.n < int64(len(c.head)) {
		copy(c.head[c.n:], p)
	}
	c.n += int64(len(p))
	if c.n > c.lim.MaxDecompressed {
		return 0, fmt.Errorf("%w: over %d bytes once decompressed", errInflatedTooLarge, c.lim.MaxDecompressed)
	}
	c.lines += bytes.Count(p, []byte{'\n'})
	if c.lines > c.lim.MaxLines+1 {
		return 0, fmt.Errorf("%w: over %d lines", errTooManyLines, c.lim.MaxLines)
	}
	if len(p) > 0 {
		c.last = p[len(p)-1]
	}
	c.h.Write(p)
	if c.copy != nil {
		if _, err := c.copy.Write(p); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// rejection classifies a readBatch error: the status to answer and the
// reason label of metrics and logs.
func rejection(err error) (status int, reason string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.Is(err, errInflatedTooLarge):
		return http.StatusRequestEntityTooLarge, "decompressed_too_large"
	case errors.Is(err, errTooManyLines):
		return http.StatusRequestEntityTooLarge, "too_many_records"
	case errors.Is(err, ErrBusy):
		return http.StatusTooManyRequests, "spool_full"
	case errors.Is(err, errStorage):
		return http.StatusServiceUnavailable, "storage"
	case errors.Is(err, errEncoding):
		return http.StatusUnsupportedMediaType, "unsupported_encoding"
	case errors.Is(err, errBadGzip):
		return http.StatusBadRequest, "bad_gzip"
	default:
		return http.StatusBadRequest, "read_error"
	}
}

// RejectedBatch describes a batch the intake refused, for /api/v1/rejects.
type RejectedBatch struct {
	Time   time.Time `json:"time"`
	Remote string    `json:"remote"`
	Intake string    `json:"intake,omitempty"`
	Status int       `json:"status"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail"`
}

const maxRejectedBatches = 100

// reject answers a refused batch, logs it, counts it and remembers it.
// detail must not hold a secret.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, intake string, status int, reason, detail string, retryAfter int) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	s.log.Warn("batch rejected", "remote", r.RemoteAddr, "intake", intake, "status", status, "reason", reason, "detail", detail)
	s.rejectMu.Lock()
	if len(s.rejected) == maxRejectedBatches {
		copy(s.rejected, s.rejected[1:])
		s.rejected = s.rejected[:maxRejectedBatches-1]
	}
	s.rejected = append(s.rejected, RejectedBatch{Time: time.Now().UTC(), Remote: r.RemoteAddr, Intake: intake, Status: status, Reason: reason, Detail: detail})
	s.rejectMu.Unlock()
	if retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
	}
	writeError(w, status, detail)
}

// rejectedBatches returns the remembered refusals, newest first.
func (s *Server) rejectedBatches() []RejectedBatch {
	s.rejectMu.Lock()
	defer s.rejectMu.Unlock()
	out := make([]RejectedBatch, len(s.rejected))
	for i, b := range s.rejected {
		out[len(out)-1-i] = b
	}
	return out
}

// handleBatch is the Logpush intake: POST (or PUT) /plain/batch with the
// intake key in X-SEKOIAIO-INTAKE-KEY and a gzip'd (or plain) body.
// Content-Type is never checked. The answer is 200 only once the batch is
// in the spool, fsync'd; processing happens after.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	intake, ok := s.intakeFor(r.Header.Get(IntakeKeyHeader))
	if !ok {
		reason, detail := "wrong_key", "wrong intake key (header "+IntakeKeyHeader+")"
		if r.Header.Get(IntakeKeyHeader) == "" {
			reason, detail = "missing_key", "missing intake key (header "+IntakeKeyHeader+")"
		}
		s.reject(w, r, "", http.StatusUnauthorized, reason, detail, 0)
		return
	}
	if !s.ready.Load() {
		s.reject(w, r, intake, http.StatusServiceUnavailable, "not_ready", "not ready; retry later", 5)
		return
	}
	sw, err := s.opts.Spool.Begin(intake)
	if err != nil {
		s.rejectSpool(w, r, intake, err)
		return
	}
	defer sw.Abort()
	cw := &countingWriter{w: sw, mark: storageFailure}
	var decoded io.Writer
	if dk, ok := sw.(DecodedKeeper); ok {
		decoded = dk.Decoded()
	}
	info, err := readBatch(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), r.Header.Get("Content-Encoding"), intake,
		batchLimits{MaxDecompressed: s.opts.MaxDecompressedBytes, MaxLines: s.opts.MaxLines}, cw, decoded)
	if err != nil {
		status, reason := rejection(err)
		detail := err.Error()
		switch reason {
		case "body_too_large":
			detail = fmt.Sprintf("body over %d bytes as sent", s.opts.MaxBodyBytes)
		case "spool_full", "storage":
			s.rejectSpool(w, r, intake, err)
			return
		}
		s.reject(w, r, intake, status, reason, detail, 0)
		return
	}
	switch {
	case info.Probe:
		s.log.Info("logpush validation upload accepted", "intake", intake)
		s.metrics.batches.WithLabelValues(intake, "validation").Inc()
		writeJSON(w, http.StatusOK, map[string]any{"accepted": 0, "validation": true})
		return
	case info.Bytes == 0:
		s.metrics.batches.WithLabelValues(intake, "empty").Inc()
		writeJSON(w, http.StatusOK, map[string]any{"accepted": 0})
		return
	}
	dup, err := sw.Commit(info.ID, info.Lines)
	if err != nil {
		s.rejectSpool(w, r, intake, err)
		return
	}
	result := "accepted"
	if dup {
		result = "duplicate"
	} else {
		s.metrics.lines.WithLabelValues(intake).Add(float64(info.Lines))
		s.metrics.bytes.WithLabelValues(intake).Add(float64(cw.n))
	}
	s.metrics.batches.WithLabelValues(intake, result).Inc()
	answer := map[string]any{"accepted": info.Lines, "batch": info.ID}
	if dup {
		answer["duplicate"] = true
	}
	s.log.Debug("batch spooled", "intake", intake, "batch", info.ID, "lines", info.Lines, "bytes", info.Bytes, "duplicate", dup)
	writeJSON(w, http.StatusOK, answer)
}

// rejectSpool answers a batch the spool refused: 429 when it is over its
// budget (ErrBusy), else 503 with reason storage. Both ask for a retry;
// the spool's error, which may name files, goes to the log only.
func (s *Server) rejectSpool(w http.ResponseWriter, r *http.Request, intake string, err error) {
	if errors.Is(err, ErrBusy) {
		s.reject(w, r, intake, http.StatusTooManyRequests, "spool_full", "spool full; retry later", 30)
		return
	}
	s.log.Error("spool failed to store a batch", "intake", intake, "reason", "storage", "err", err)
	s.reject(w, r, intake, http.StatusServiceUnavailable, "storage", storageDetail, storageRetry)
}

// countingWriter counts the bytes written through it; mark, when set,
// classifies the errors of w.
type countingWriter struct {
	w    io.Writer
	n    int64
	mark func(error) error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.mark != nil {
		err = c.mark(err)
	}
	return n, err
}
