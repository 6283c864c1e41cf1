package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// LiveStore is the storage of the catalog versions and the clients that
// the admin API changes while the servers run.
type LiveStore interface {
	Revisions(ctx context.Context) (catalog, clients int64, err error)
	LatestCatalogVersion(ctx context.Context) (*storage.CatalogVersion, error)
	AddCatalogVersion(ctx context.Context, expected int64, v storage.CatalogVersion, rec audit.Record) (int64, error)
	Clients(ctx context.Context) ([]storage.ClientRecord, error)
	CreateClients(ctx context.Context, clients []storage.ClientRecord, onlyIfEmpty bool, rec audit.Record) (bool, error)
}

// ClientSettings is the stored form of a client, everything but its
// secret.
type ClientSettings struct {
	Name             string   `json:"name,omitempty"`
	Public           bool     `json:"public,omitempty"`
	GrantTypes       []string `json:"grant_types,omitempty"`
	RequireDPoP      bool     `json:"require_dpop,omitempty"`
	RequireDPoPNonce bool     `json:"require_dpop_nonce,omitempty"`
	Audiences        []string `json:"audiences,omitempty"`
	AdminScopes      []string `json:"admin_scopes,omitempty"`
}

// SettingsOf returns the settings of c.
func SettingsOf(c *Client) ClientSettings {
	return ClientSettings{
		Name: c.Name, Public: c.Public, GrantTypes: c.GrantTypes, RequireDPoP: c.RequireDPoP,
		RequireDPoPNonce: c.RequireDPoPNonce, Audiences: c.Audiences, AdminScopes: c.AdminScopes,
	}
}

// ClientFromRecord converts a stored client.
func ClientFromRecord(r storage.ClientRecord) (*Client, error) {
	var st ClientSettings
	if err := json.Unmarshal(r.Settings, &st); err != nil {
		return nil, fmt.Errorf("decode client %q: %w", r.ClientID, err)
	}
	return &Client{
		ID: r.ClientID, Name: st.Name, Public: st.Public, SecretHash: r.SecretHash,
		GrantTypes: st.GrantTypes, RequireDPoP: st.RequireDPoP, RequireDPoPNonce: st.RequireDPoPNonce,
		Audiences: st.Audiences, AdminScopes: st.AdminScopes, DisabledAt: r.DisabledAt,
	}, nil
}

// RecordOf returns the stored form of c.
func RecordOf(c *Client, now time.Time) storage.ClientRecord {
	settings, _ := json.Marshal(SettingsOf(c)) // a struct of strings and bools always encodes
	return storage.ClientRecord{
		ClientID: c.ID, Settings: settings, SecretHash: c.SecretHash,
		CreatedAt: now, UpdatedAt: now, DisabledAt: c.DisabledAt,
	}
}

// configuredClients returns the clients of the clients file and the
// bootstrap admin client.
func configuredClients(cfg *config.Config) ([]*Client, error) {
	out := make([]*Client, 0, len(cfg.Clients)+1)
	for _, c := range cfg.Clients {
		out = append(out, NewClient(c))
	}
	boot, err := bootstrapClient(cfg)
	if err != nil {
		return nil, err
	}
	if boot != nil {
		out = append(out, boot)
	}
	return out, nil
}

// bootstrapClient returns the admin client of admin.bootstrap_client_id
// with every admin scope, or nil when none is configured. A clients file
// entry with the same id is replaced by it.
func bootstrapClient(cfg *config.Config) (*Client, error) {
	a := cfg.Admin
	if a.BootstrapClientID == "" {
		return nil, nil
	}
	c := &Client{
		ID:          a.BootstrapClientID,
		Name:        "bootstrap admin client",
		GrantTypes:  []string{GrantTypeClientCredentials},
		AdminScopes: append([]string(nil), config.AdminScopes...),
	}
	if a.BootstrapClientSecretHash != "" {
		c.SecretHash = []byte(a.BootstrapClientSecretHash)
		return c, nil
	}
	secret, err := a.BootstrapSecret()
	if err != nil {
		return nil, fmt.Errorf("read admin.bootstrap_client_secret_file: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	c.SecretHash = []byte(plainDigestPrefix + hex.EncodeToString(sum[:]))
	return c, nil
}

// ImportSource names the client of catalog versions and client records
// imported from the configured files.
const ImportSource = "config_file"

// ImportConfigured stores the configured catalog as version 1 when the
// database has no catalog yet, the clients of the clients file when it
// has no clients yet, and the bootstrap admin client when no stored
// client has its id. Replicas starting together may race: the catalog
// write and the one-time client import are each decided by one
// transaction, so exactly one replica imports.
func (s *Server) ImportConfigured(ctx context.Context, store LiveStore) error {
	now := s.now().UTC()
	if _, err := store.LatestCatalogVersion(ctx); errors.Is(err, storage.ErrNotFound) {
		actions, _ := json.Marshal(nonNilActions(s.cfg.Actions))
		diff, _ := json.Marshal(DiffActions(nil, s.cfg.Actions))
		_, err := store.AddCatalogVersion(ctx, 0, storage.CatalogVersion{
			CreatedAt: now, ClientID: ImportSource, Comment: "Imported from " + s.cfg.CatalogFile,
			Actions: actions, Diff: diff,
		}, audit.Record{
			Time: now, RequestID: oauth.NewRequestID(), Event: audit.EventAdmin, ClientID: ImportSource,
			Operation: "catalog.import", Decision: audit.DecisionChanged,
			Detail: fmt.Sprintf("Imported %d actions from the catalog file as catalog version 1.", len(s.cfg.Actions)),
		})
		if err != nil && !errors.Is(err, storage.ErrVersionMismatch) {
			return fmt.Errorf("import the catalog file: %w", err)
		}
		if err == nil {
			s.logger.Info("catalog file imported as catalog version 1", "actions", len(s.cfg.Actions))
		}
	} else if err != nil {
		return fmt.Errorf("read the stored catalog: %w", err)
	}

	records := make([]storage.ClientRecord, 0, len(s.cfg.Clients))
	for _, c := range s.cfg.Clients {
		records = append(records, RecordOf(NewClient(c), now))
	}
	imported, err := store.CreateClients(ctx, records, true, audit.Record{
		Time: now, RequestID: oauth.NewRequestID(), Event: audit.EventAdmin, ClientID: ImportSource,
		Operation: "clients.import", Decision: audit.DecisionChanged,
		Detail: fmt.Sprintf("Imported %d clients from the clients file.", len(records)),
	})
	if err != nil {
		return fmt.Errorf("import the clients file: %w", err)
	}
	if imported {
		s.logger.Info("clients file imported", "clients", len(records))
	}

	boot, err := bootstrapClient(s.cfg)
	if err != nil || boot == nil {
		return err
	}
	_, err = store.CreateClients(ctx, []storage.ClientRecord{RecordOf(boot, now)}, false, audit.Record{
		Time: now, RequestID: oauth.NewRequestID(), Event: audit.EventAdmin, ClientID: ImportSource,
		Operation: "clients.bootstrap", Target: boot.ID, Decision: audit.DecisionChanged,
		Detail: "Created the bootstrap admin client from admin.bootstrap_client_id.",
	})
	switch {
	case errors.Is(err, storage.ErrExists):
		return nil
	case err != nil:
		return fmt.Errorf("create the bootstrap admin client: %w", err)
	}
	s.logger.Info("bootstrap admin client created", "client_id", boot.ID)
	return nil
}

// Refresh loads the stored catalog and clients when their revisions
// differ from the ones this server runs with, and makes them live.
func (s *Server) Refresh(ctx context.Context, store LiveStore) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	catalogRev, clientsRev, err := store.Revisions(ctx)
	if err != nil {
		return err
	}
	if catalogRev != s.Catalog().Number {
		v, err := store.LatestCatalogVersion(ctx)
		if err != nil {
			return err
		}
		c, err := s.CatalogFromVersion(v)
		if err != nil {
			return err
		}
		s.setCatalog(c)
		s.logger.Info("catalog version loaded", "catalog_number", c.Number, "catalog_version", c.Version, "actions", c.Len())
	}
	if clientsRev != s.clientsRevision.Load() {
		records, err := store.Clients(ctx)
		if err != nil {
			return err
		}
		clients := make([]*Client, 0, len(records))
		for _, r := range records {
			c, err := ClientFromRecord(r)
			if err != nil {
				return err
			}
			clients = append(clients, c)
		}
		s.clients.replace(clients)
		s.clientsRevision.Store(clientsRev)
		s.logger.Info("clients loaded", "clients_revision", clientsRev, "clients", len(clients))
	}
	return nil
}

// Watch calls Refresh every interval until ctx ends, logging failures.
func (s *Server) Watch(ctx context.Context, store LiveStore, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.Refresh(ctx, store); err != nil && ctx.Err() == nil {
			failures++
			// Log the first failure and then one in sixty, so an outage
			// of the database does not flood the log.
			if failures%60 == 1 {
				s.logger.Error("reload catalog and clients", "error", err, "failures", failures)
			}
			continue
		}
		failures = 0
	}
}

// CatalogFromVersion builds the catalog of a stored version.
func (s *Server) CatalogFromVersion(v *storage.CatalogVersion) (*exchange.Catalog, error) {
	actions, err := DecodeActions(v.Actions)
	if err != nil {
		return nil, fmt.Errorf("catalog version %d: %w", v.Number, err)
	}
	c := exchange.NewCatalog(actions, time.Duration(s.cfg.Tokens.MaxTTL))
	c.Number = v.Number
	return c, nil
}

func (s *Server) setCatalog(c *exchange.Catalog) {
	s.exchange.SetCatalog(c)
	if s.metrics != nil {
		s.metrics.setCatalog(c.Version)
	}
	if md, err := s.buildMetadata(); err == nil {
		s.metadata.Store(&md)
	}
}

// Exchange returns the token exchange handler, for explaining decisions.
func (s *Server) Exchange() *exchange.Handler { return s.exchange }

// Config returns the server's configuration.
func (s *Server) Config() *config.Config { return s.cfg }

// Client returns the live client id.
func (s *Server) Client(id string) (*Client, bool) { return s.clients.lookup(id) }

// Clients returns every live client.
func (s *Server) Clients() []*Client {
	m := *s.clients.clients.Load()
	out := make([]*Client, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	return out
}

// DecodeActions decodes the actions of a stored catalog version.
func DecodeActions(b []byte) ([]config.Action, error) {
	var actions []config.Action
	if err := json.Unmarshal(b, &actions); err != nil {
		return nil, fmt.Errorf("decode actions: %w", err)
	}
	return actions, nil
}

func nonNilActions(a []config.Action) []config.Action {
	if a == nil {
		return []config.Action{}
	}
	return a
}
