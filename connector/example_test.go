package connector_test

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"time"

	"github.com/sotto-auth/sotto/connector"
)

// A ticket API that accepts only action tokens for ticket:create, sent
// with a DPoP proof for https://itsm-api.corp.example/tickets.
func ExampleValidator_Require() {
	ctx := context.Background()
	validator, err := connector.New(ctx, connector.Config{
		Issuer:    "https://sotto.corp.example",
		Audience:  "https://itsm.corp.example",
		PublicURL: "https://itsm-api.corp.example",
	})
	if err != nil {
		log.Fatal(err)
	}

	createTicket := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := connector.ClaimsFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"reporter": claims.Subject})
	})

	mux := http.NewServeMux()
	mux.Handle("POST /tickets", validator.Require(connector.Requirement{Scope: "ticket:create"}, createTicket))

	server := &http.Server{
		Addr:              "127.0.0.1:8090",
		Handler:           http.MaxBytesHandler(mux, 64<<10),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	log.Fatal(server.ListenAndServe())
}
