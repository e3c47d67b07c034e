package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// sessionCookie carries a login: 32 random bytes in hex. The server
	// keeps a digest of it (keyed by the dashboard token) in the
	// SessionStore; logging out deletes it, and a new dashboard token makes
	// every earlier session unknown.
	sessionCookie = "raywatch_session"
	sessionTTL    = 12 * time.Hour
	// smallBody caps the body of the small endpoints (login, logout,
	// PATCH of an alert).
	smallBody = 16 << 10
)

// authorized reports whether r carries the dashboard token (bearer header)
// or a valid session cookie. Without a configured token everything is.
func (s *Server) authorized(r *http.Request) bool {
	return s.principal(r) != ""
}

// principal names who makes an authorized request: "api" for the bearer
// token, "dashboard" for the session cookie, "anonymous" when no token is
// configured; "" when unauthorized.
func (s *Server) principal(r *http.Request) string {
	if s.token == nil {
		return "anonymous"
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[7:])), s.token) == 1 {
			return "api"
		}
		return ""
	}
	if key, ok := s.sessionKey(r); ok {
		valid, err := s.sessions.LookupSession(r.Context(), key, time.Now())
		if err != nil {
			s.log.Error("look up session", "err", err)
		}
		if valid {
			return "dashboard"
		}
	}
	return ""
}

// sessionKey returns the SessionStore key of r's session cookie; ok is
// false without a well-formed cookie.
func (s *Server) sessionKey(r *http.Request) (key string, ok bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(c.Value); err != nil {
		return "", false
	}
	return s.sessionKeyOf(c.Value), true
}

// sessionKeyOf returns the SessionStore key of the session cookie value
// v: its hex HMAC keyed by a digest of the dashboard token.
func (s *Server) sessionKeyOf(v string) string {
	m := hmac.New(sha256.New, s.session)
	m.Write([]byte("raywatch-session\x00" + v))
	return hex.EncodeToString(m.Sum(nil))
}

// requireAuth wraps h so that it runs only for authorized requests. A
// request that changes state with the cookie must also come from this
// origin (the cookie is SameSite=Strict already; this is a second lock).
func (s *Server) requireAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who := s.principal(r)
		if who == "" {
			s.metrics.unauthorized.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="raywatch"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong dashboard token (Authorization: Bearer, or log in)")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		h(w, r)
	}
}

// sameOrigin reports whether r has no Origin header or one whose host is
// the request's host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// handleLogin serves POST /login with {"token": "..."} (or a form field
// token): on the right token it sets the session cookie (HttpOnly,
// SameSite=Strict, Secure over TLS) and answers 204; a form post is
// redirected to the dashboard.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, smallBody)
	var token string
	isJSON := strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
	if isJSON {
		var body struct {
			Token string `json:"token"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, `body must be {"token": "..."}`)
			return
		}
		token = body.Token
	} else {
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "bad form")
			return
		}
		token = r.PostForm.Get("token")
	}
	if s.token != nil && subtle.ConstantTimeCompare([]byte(token), s.token) != 1 {
		s.metrics.unauthorized.Inc()
		s.log.Warn("login refused", "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "wrong token")
		return
	}
	if s.token != nil {
		var id [32]byte
		if _, err := rand.Read(id[:]); err != nil {
			s.log.Error("login", "err", err)
			writeError(w, http.StatusInternalServerError, "cannot create a session")
			return
		}
		value := hex.EncodeToString(id[:])
		if err := s.sessions.CreateSession(r.Context(), s.sessionKeyOf(value), time.Now().Add(sessionTTL)); err != nil {
			s.log.Error("login", "err", err)
			writeError(w, http.StatusInternalServerError, "cannot create a session")
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name:     sessionCookie,
			Value:    value,
			Path:     "/",
			MaxAge:   int(sessionTTL / time.Second),
			HttpOnly: true,
			Secure:   r.TLS != nil,
			SameSite: http.SameSiteStrictMode,
		})
	}
	if !isJSON {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleLogout serves POST /logout: from this origin only, it revokes the
// session of the request's cookie (server-side: a copy of the cookie stops
// working too) and clears the cookie.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, smallBody)
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("logout takes no body (at most %d bytes are read)", smallBody))
		return
	}
	if key, ok := s.sessionKey(r); ok && s.token != nil {
		if err := s.sessions.DeleteSession(r.Context(), key); err != nil {
			s.log.Error("logout", "err", err)
			writeError(w, http.StatusInternalServerError, "cannot revoke the session")
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
