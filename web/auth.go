package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// sessionCookie carries a login: "<expiry unix>.<hex HMAC>". It holds
	// no secret: the HMAC is keyed by a digest of the dashboard token.
	sessionCookie = "raywatch_session"
	sessionTTL    = 12 * time.Hour
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
	if c, err := r.Cookie(sessionCookie); err == nil && s.validSession(c.Value, time.Now()) {
		return "dashboard"
	}
	return ""
}

func (s *Server) sessionMAC(exp string) string {
	m := hmac.New(sha256.New, s.session)
	m.Write([]byte("raywatch-session\x00" + exp))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) validSession(v string, now time.Time) bool {
	exp, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() > n {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(s.sessionMAC(exp)))
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
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
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
		exp := strconv.FormatInt(time.Now().Add(sessionTTL).Unix(), 10)
		http.SetCookie(w, &http.Cookie{
			Name:     sessionCookie,
			Value:    exp + "." + s.sessionMAC(exp),
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

// handleLogout clears the session cookie.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
