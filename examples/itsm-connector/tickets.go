package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sotto-auth/sotto/connector"
)

const (
	// maxBodyBytes bounds a request body.
	maxBodyBytes = 16 << 10

	// maxTickets bounds the in-memory store.
	maxTickets = 10_000
)

// ticket is one IT ticket.
type ticket struct {
	ID       string    `json:"id"`
	Title    string    `json:"title"`
	Reporter string    `json:"reporter"`
	Client   string    `json:"client_id"`
	TokenID  string    `json:"token_id"`
	Created  time.Time `json:"created"`
}

// ticketStore keeps tickets in memory.
type ticketStore struct {
	mu      sync.Mutex
	tickets []ticket
}

func (s *ticketStore) add(t ticket) (ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tickets) >= maxTickets {
		return ticket{}, errTooManyTickets
	}
	t.ID = fmt.Sprintf("INC-%05d", len(s.tickets)+1)
	s.tickets = append(s.tickets, t)
	return t, nil
}

func (s *ticketStore) byReporter(reporter string) []ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ticket{}
	for _, t := range s.tickets {
		if t.Reporter == reporter {
			out = append(out, t)
		}
	}
	return out
}

// newHandler returns the ticket API behind validator. With introspect,
// creating a ticket also checks with the issuer whether the token is active.
func newHandler(validator *connector.Validator, introspect bool, logger *slog.Logger) http.Handler {
	store := &ticketStore{}
	mux := http.NewServeMux()
	mux.Handle("POST /tickets", validator.Require(
		connector.Requirement{Scope: "ticket:create", Introspect: introspect},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { createTicket(w, r, store, logger) })))
	mux.Handle("GET /tickets", validator.Require(
		connector.Requirement{Scope: "ticket:read"},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { listTickets(w, r, store) })))
	return mux
}

func createTicket(w http.ResponseWriter, r *http.Request, store *ticketStore, logger *slog.Logger) {
	claims, _ := connector.ClaimsFrom(r.Context())

	var body struct {
		Title string `json:"title"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the body is not a JSON object with a title"})
			return
		}
	}
	if body.Title == "" {
		body.Title = "Untitled ticket"
	}

	created, err := store.add(ticket{
		Title: body.Title, Reporter: claims.Subject, Client: claims.ClientID,
		TokenID: claims.TokenID, Created: time.Now().UTC(),
	})
	if errors.Is(err, errTooManyTickets) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	logger.InfoContext(r.Context(), "ticket created", "ticket_id", created.ID,
		"sub", claims.Subject, "client_id", claims.ClientID, "token_id", claims.TokenID)
	w.Header().Set("Location", "/tickets/"+created.ID)
	writeJSON(w, http.StatusCreated, created)
}

func listTickets(w http.ResponseWriter, r *http.Request, store *ticketStore) {
	claims, _ := connector.ClaimsFrom(r.Context())
	writeJSON(w, http.StatusOK, store.byReporter(claims.Subject))
}

func writeJSON(w http.ResponseWriter, status int, value any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(value)
}
