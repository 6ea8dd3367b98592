package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/store"
)

// userHandler is a handler for an authenticated user.
type userHandler func(w http.ResponseWriter, r *http.Request, userID string)

// user authenticates the request's bearer JWT; a user only ever reaches
// their own data because every handler is keyed by this id alone.
func (s *Server) user(h userHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := auth.AuthorizationBearer(r)
		if tok == "" {
			unauthorized(w, false, "missing token: send Authorization: Bearer <jwt>")
			return
		}
		uid, err := s.cfg.Users.Verify(tok)
		if err != nil {
			unauthorized(w, true, err.Error())
			return
		}
		if v, wait := s.users.allow(uid, 1, s.cfg.Now()); v != allowed {
			tooMany(w, wait)
			return
		}
		h(w, r, uid)
	}
}

// storeError maps a store failure to a response.
func (s *Server) storeError(w http.ResponseWriter, op string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "", "not found")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		writeError(w, http.StatusServiceUnavailable, "", "request cancelled")
	default:
		s.log.Error("store failure", "op", op, "err", err)
		writeError(w, http.StatusServiceUnavailable, "", "storage unavailable, retry later")
	}
}

func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request, uid string) {
	s.catchUp(r.Context(), uid)
	q := r.URL.Query()
	after, limit := uint64(0), s.cfg.DefaultListLimit
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "after", "after must be a non-negative integer seq")
			return
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.MaxListLimit {
			writeError(w, http.StatusBadRequest, "limit", fmt.Sprintf("limit must be an integer from 1 to %d", s.cfg.MaxListLimit))
			return
		}
		limit = n
	}
	unreadOnly := false
	if v := q.Get("unread_only"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "unread_only", "unread_only must be true or false")
			return
		}
		unreadOnly = b
	}
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "wait", err.Error())
		return
	}
	list := func(ctx context.Context) ([]herald.Notification, error) {
		return s.cfg.Store.List(ctx, uid, after, limit, unreadOnly)
	}
	var ns []herald.Notification
	if wait > 0 && s.cfg.Waiter != nil {
		var answer bool
		if ns, answer, err = s.longPoll(w, r, uid, after, wait, list); !answer {
			return
		}
	} else {
		ns, err = list(r.Context())
	}
	if err != nil {
		s.storeError(w, "list", err)
		return
	}
	next := after
	if len(ns) > 0 {
		next = ns[len(ns)-1].Seq
	}
	writeList(w, ns, next)
}

// writeList streams {"notifications":[…],"next":N} one notification at a
// time through the ResponseWriter's buffer, so that the encoded page is
// never held whole in memory; a reader that stops reading is cut by the
// server's write timeout, which ends the handler and frees the page.
func writeList(w http.ResponseWriter, ns []herald.Notification, next uint64) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, `{"notifications":[`); err != nil {
		return
	}
	enc := json.NewEncoder(w)
	for i := range ns {
		if i > 0 {
			if _, err := io.WriteString(w, ","); err != nil {
				return
			}
		}
		if err := enc.Encode(&ns[i]); err != nil {
			return
		}
	}
	_, _ = io.WriteString(w, `],"next":`+strconv.FormatUint(next, 10)+"}\n")
}

func (s *Server) markRead(w http.ResponseWriter, r *http.Request, uid string) {
	var req struct {
		Seqs []uint64 `json:"seqs"`
		All  bool     `json:"all"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	// The same rule as a WebSocket read frame.
	if err := herald.ValidateRead(req.Seqs, req.All); err != nil {
		ve, _ := herald.AsValidationError(err)
		writeError(w, http.StatusBadRequest, ve.Field, err.Error())
		return
	}
	var unread int64
	var err error
	if req.All {
		unread, err = s.cfg.Store.MarkAllRead(r.Context(), uid)
	} else {
		unread, err = s.cfg.Store.MarkRead(r.Context(), uid, req.Seqs)
	}
	if err != nil {
		s.storeError(w, "mark_read", err)
		return
	}
	if s.cfg.Unread != nil {
		s.cfg.Unread.PublishUnread(r.Context(), uid, unread)
	}
	writeJSON(w, http.StatusOK, map[string]int64{"unread": unread})
}

func (s *Server) unreadCount(w http.ResponseWriter, r *http.Request, uid string) {
	n, err := s.cfg.Store.UnreadCount(r.Context(), uid)
	if err != nil {
		s.storeError(w, "unread_count", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"unread": n})
}

func (s *Server) getPreferences(w http.ResponseWriter, r *http.Request, uid string) {
	p, err := s.cfg.Store.GetPreferences(r.Context(), uid)
	if err != nil {
		s.storeError(w, "get_preferences", err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) putPreferences(w http.ResponseWriter, r *http.Request, uid string) {
	// Absent channels default to on, as for a user who never set any.
	p := herald.DefaultPreferences()
	if !decodeBody(w, r, &p) {
		return
	}
	if err := p.Validate(); err != nil {
		ve, _ := herald.AsValidationError(err)
		writeError(w, http.StatusBadRequest, ve.Field, err.Error())
		return
	}
	if err := s.cfg.Store.PutPreferences(r.Context(), uid, p); err != nil {
		s.storeError(w, "put_preferences", err)
		return
	}
	if pn, ok := s.cfg.Memberships.(PreferencesNotifier); ok {
		pn.PreferencesChanged(r.Context(), uid, p.Clone())
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) postDevice(w http.ResponseWriter, r *http.Request, uid string) {
	var req struct {
		Platform string `json:"platform"`
		Token    string `json:"token"`
		AppID    string `json:"app_id"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	d := herald.Device{UserID: uid, Platform: req.Platform, Token: req.Token, AppID: req.AppID, CreatedAt: now}
	if err := d.Validate(); err != nil {
		ve, _ := herald.AsValidationError(err)
		writeError(w, http.StatusBadRequest, ve.Field, err.Error())
		return
	}
	if d.AppID == "" {
		if d.AppID = s.cfg.DefaultAppID; d.AppID == "" {
			writeError(w, http.StatusBadRequest, "app_id", "app_id: is required (no default app is configured)")
			return
		}
	}
	// A registration is a sighting: last_seen is its time.
	d.LastSeen = now
	if err := s.cfg.Store.PutDevice(r.Context(), d); err != nil {
		s.storeError(w, "put_device", err)
		return
	}
	writeJSON(w, http.StatusCreated, d)
}

// listDevices answers the caller's devices, oldest registration first;
// an empty list when there are none.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, uid string) {
	ds, err := s.cfg.Store.Devices(r.Context(), uid)
	if err != nil {
		s.storeError(w, "list_devices", err)
		return
	}
	if ds == nil {
		ds = []herald.Device{}
	}
	writeJSON(w, http.StatusOK, map[string][]herald.Device{"devices": ds})
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, uid string) {
	tok := r.PathValue("token")
	if tok == "" {
		writeError(w, http.StatusBadRequest, "token", "device token is required in the path")
		return
	}
	if err := s.cfg.Store.DeleteDevice(r.Context(), uid, tok); err != nil {
		s.storeError(w, "delete_device", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
