package admin

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/crypto/bcrypt"

	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

func (a *api) clientRoutes(r *mux.Router) {
	r.Handle("/clients", a.require(config.ScopeClients, "clients.list", a.listClients)).Methods(http.MethodGet)
	r.Handle("/clients", a.require(config.ScopeClients, "clients.create", a.createClient)).Methods(http.MethodPost)
	r.Handle("/clients/{id}", a.require(config.ScopeClients, "clients.get", a.getClient)).Methods(http.MethodGet)
	r.Handle("/clients/{id}", a.require(config.ScopeClients, "clients.change", a.changeClient)).Methods(http.MethodPost)
}

func requestID(r *http.Request) string { return oauth.RequestID(r.Context()) }

// clientBody is a client as the API shows it: never its secret or hash.
type clientBody struct {
	ClientID string `json:"client_id"`
	authz.ClientSettings
	Disabled   bool       `json:"disabled"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	// ClientSecret is sent once, in the answer that created or rotated it.
	ClientSecret string `json:"client_secret,omitempty"`
}

func bodyOf(c *authz.Client) clientBody {
	return clientBody{ClientID: c.ID, ClientSettings: authz.SettingsOf(c), Disabled: c.Disabled(), DisabledAt: c.DisabledAt}
}

func (a *api) listClients(w http.ResponseWriter, r *http.Request) *Error {
	records, err := a.Store.Clients(r.Context())
	if err != nil {
		return a.internalError(r, err)
	}
	out := make([]clientBody, 0, len(records))
	for _, rec := range records {
		c, err := authz.ClientFromRecord(rec)
		if err != nil {
			return a.internalError(r, err)
		}
		out = append(out, bodyOf(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
	return nil
}

func clientVar(r *http.Request) (string, string, *Error) {
	raw, err := url.PathUnescape(mux.Vars(r)["id"])
	if err != nil {
		return "", "", badRequest("The client_id in the path is not validly percent-encoded.")
	}
	for _, m := range []string{"disable", "enable", "rotate-secret"} {
		if id, ok := strings.CutSuffix(raw, ":"+m); ok && r.Method == http.MethodPost {
			return id, m, nil
		}
	}
	return raw, "", nil
}

func (a *api) storedClient(r *http.Request, id string) (*authz.Client, *Error) {
	rec, err := a.Store.Client(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apiError(http.StatusNotFound, "not_found", fmt.Sprintf(
			"No client %s is stored; GET /v1/clients lists them.", quote(id)))
	}
	if err != nil {
		return nil, a.internalError(r, err)
	}
	c, err := authz.ClientFromRecord(*rec)
	if err != nil {
		return nil, a.internalError(r, err)
	}
	return c, nil
}

func (a *api) getClient(w http.ResponseWriter, r *http.Request) *Error {
	id, _, e := clientVar(r)
	if e != nil {
		return e
	}
	c, e := a.storedClient(r, id)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, bodyOf(c))
	return nil
}

// newSecret returns a random client secret of 256 bits and its bcrypt
// hash.
func newSecret() (string, []byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	return secret, hash, err
}

type clientCreate struct {
	ClientID string `json:"client_id"`
	authz.ClientSettings
}

func (a *api) createClient(w http.ResponseWriter, r *http.Request) *Error {
	var body clientCreate
	if e := decodeJSON(r, &body); e != nil {
		return e
	}
	var secret string
	var hash []byte
	if !body.Public {
		var err error
		if secret, hash, err = newSecret(); err != nil {
			return a.internalError(r, err)
		}
	}
	st := body.ClientSettings
	cc := config.Client{
		ClientID: body.ClientID, Name: st.Name, Public: st.Public, ClientSecretHash: string(hash),
		GrantTypes: st.GrantTypes, RequireDPoP: st.RequireDPoP, RequireDPoPNonce: st.RequireDPoPNonce,
		Audiences: st.Audiences, AdminScopes: st.AdminScopes,
	}
	if ps := config.ValidateClients("client", []config.Client{cc}); len(ps) > 0 {
		return clientProblems(ps)
	}
	client := authz.NewClient(cc)
	now := a.Now().UTC()
	rec := a.record(r.Context(), "clients.create", client.ID)
	after, _ := json.Marshal(bodyOf(client))
	rec.After = string(after)
	rec.Detail = "Created the client; its secret was returned once and only its bcrypt hash is stored."
	_, err := a.Store.CreateClients(r.Context(), []storage.ClientRecord{authz.RecordOf(client, now)}, false, rec)
	if errors.Is(err, storage.ErrExists) {
		return apiError(http.StatusConflict, "conflict", fmt.Sprintf("A client %s already exists.", quote(client.ID)))
	}
	if err != nil {
		return a.internalError(r, err)
	}
	a.refresh(r)
	out := bodyOf(client)
	out.ClientSecret = secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func clientProblems(ps []config.Problem) *Error {
	e := apiError(http.StatusUnprocessableEntity, "invalid_client_metadata",
		"The client is invalid; fix each listed problem and send it again.")
	for _, p := range ps {
		e.Problems = append(e.Problems, strings.TrimPrefix(p.Key, "clients[0].")+": got "+quote(p.Value)+", expected "+p.Expected)
	}
	return e
}

// refresh makes a change live on this server at once; the others follow
// at their next poll.
func (a *api) refresh(r *http.Request) {
	if err := a.Server.Refresh(r.Context(), a.Store); err != nil {
		a.Logger.ErrorContext(r.Context(), "load the change just written", "request_id", requestID(r), "error", err)
	}
}

// changeClient serves POST /v1/clients/{id}:disable, :enable and
// :rotate-secret.
func (a *api) changeClient(w http.ResponseWriter, r *http.Request) *Error {
	id, method, e := clientVar(r)
	if e != nil {
		return e
	}
	if method == "" {
		return apiError(http.StatusMethodNotAllowed, "invalid_request",
			"POST on a client takes a method: /v1/clients/{id}:disable, :enable or :rotate-secret.")
	}
	body, e := decodeSwitch(r)
	if e != nil {
		return e
	}
	c, e := a.storedClient(r, id)
	if e != nil {
		return e
	}
	before, _ := json.Marshal(bodyOf(c))
	now := a.Now().UTC()
	var secret string
	switch method {
	case "disable":
		if c.DisabledAt == nil {
			c.DisabledAt = &now
		}
	case "enable":
		c.DisabledAt = nil
	case "rotate-secret":
		if c.Public {
			return badRequest("A public client has no secret to rotate.")
		}
		var hash []byte
		var err error
		if secret, hash, err = newSecret(); err != nil {
			return a.internalError(r, err)
		}
		c.SecretHash = hash
	}
	rec := a.record(r.Context(), "clients."+method, c.ID)
	after, _ := json.Marshal(bodyOf(c))
	rec.Before, rec.After = string(before), string(after)
	rec.Detail = body.Comment
	stored := authz.RecordOf(c, now)
	if err := a.Store.UpdateClient(r.Context(), stored, rec); err != nil {
		return a.internalError(r, err)
	}
	a.refresh(r)

	out := struct {
		clientBody
		RevokedTokens *int64 `json:"revoked_tokens,omitempty"`
	}{clientBody: bodyOf(c)}
	out.ClientSecret = secret
	if method == "disable" && body.RevokeTokens {
		rec := a.record(r.Context(), "revoke.client", c.ID)
		rec.Decision, rec.Reason = "revoked", "client_disabled"
		rec.Detail = "Revoked the live tokens of a disabled client."
		n, err := a.Store.RevokeTokensWhere(r.Context(), storage.TokenFilter{ClientID: c.ID}, now, rec)
		if err != nil {
			return a.internalError(r, err)
		}
		out.RevokedTokens = &n
		a.sweepLater(storage.TokenFilter{ClientID: c.ID}, rec)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
