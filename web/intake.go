package web

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/raywatch/raywatch/normalize"
)

// errTooLarge marks a body over one of the size limits.
var errTooLarge = errors.New("body too large")

// handleBatch is the Logpush intake: POST /plain/batch with the intake key in
// X-SEKOIAIO-INTAKE-KEY and a gzip'd (or plain) NDJSON body. Content-Type is
// never checked.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	log := s.log.With("remote", r.RemoteAddr)
	intake, ok := s.intakeFor(r.Header.Get(IntakeKeyHeader))
	if !ok {
		reason := "wrong intake key"
		if r.Header.Get(IntakeKeyHeader) == "" {
			reason = "missing intake key"
		}
		log.Warn("batch rejected", "reason", reason, "status", http.StatusUnauthorized)
		writeError(w, http.StatusUnauthorized, reason+" (header "+IntakeKeyHeader+")")
		return
	}
	log = log.With("intake", intake)
	if !s.ready.Load() {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	body, status, err := s.readBody(w, r)
	if err != nil {
		log.Warn("batch rejected", "reason", err.Error(), "status", status)
		writeError(w, status, err.Error())
		return
	}
	if normalize.IsValidationProbe(body) {
		log.Info("logpush validation upload accepted")
		writeJSON(w, http.StatusOK, map[string]any{"accepted": 0, "validation": true})
		return
	}
	res, err := s.opts.Ingester.Ingest(r.Context(), intake, body)
	if err != nil {
		log.Error("batch not processed", "err", err)
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "batch not processed; retry later")
		return
	}
	if res.Malformed > 0 {
		log.Warn("malformed records in batch", "records", res.Records, "malformed", res.Malformed, "first_errors", res.Errors)
	}
	answer := map[string]any{"accepted": res.Records, "malformed": res.Malformed, "alerts": res.Alerts}
	if len(res.Errors) > 0 {
		answer["errors"] = res.Errors
	}
	writeJSON(w, http.StatusOK, answer)
}

// readBody reads the request body within the size limits, gunzipping it when
// Content-Encoding says gzip or the body starts with gzip's magic bytes. On
// error it returns the status to answer.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	br := bufio.NewReader(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	magic, _ := br.Peek(2)
	gz := strings.Contains(enc, "gzip") || (len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
	if !gz && enc != "" && enc != "identity" {
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q (send gzip or identity)", enc)
	}
	var src io.Reader = br
	limit := s.opts.MaxBodyBytes
	if gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, statusFor(err), fmt.Errorf("bad gzip body: %w", err)
		}
		defer zr.Close()
		src = zr
		limit = s.opts.MaxDecompressedBytes
	}
	body, err := io.ReadAll(io.LimitReader(src, limit+1))
	if err != nil {
		status := statusFor(err)
		if status == http.StatusRequestEntityTooLarge {
			return nil, status, fmt.Errorf("%w: compressed body over %d bytes", errTooLarge, s.opts.MaxBodyBytes)
		}
		return nil, status, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: decompressed body over %d bytes", errTooLarge, limit)
	}
	return body, 0, nil
}

func statusFor(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}
