package authz_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/authz"
	"github.com/sotto-auth/sotto/stepup"
)

const travelDetails = `[{"type":"travel_approval","amount":120,"currency":"EUR","request_id":"TR-7"}]`

// travelForm is an exchange for travel:approve, a push step-up action.
func (ts *testServer) travelForm(details string) url.Values {
	f := ts.exchangeForm(ts.idToken(map[string]any{"groups": []string{"managers"}}))
	f.Set("scope", "travel:approve")
	f.Set("audience", "https://erp.corp.example")
	if details != "" {
		f.Set("authorization_details", details)
	}
	return f
}

// approver is a user's approver app key.
type approver struct {
	t   *testing.T
	key *ecdsa.PrivateKey
	jkt string
}

func newApprover(t *testing.T) *approver {
	t.Helper()
	d := newDevice(t)
	return &approver{t: t, key: d.key, jkt: d.jkt}
}

func (a *approver) device() *device { return &device{t: a.t, key: a.key, jkt: a.jkt} }

// enroll registers a for the user of idToken and activates it, as an
// administrator does after checking with the user.
func (ts *testServer) enroll(a *approver, idToken string) response {
	ts.t.Helper()
	got := ts.enrollPending(a, idToken)
	if got.status == http.StatusCreated {
		err := ts.store.ActivateApprover(context.Background(), a.jkt, time.Now(), audit.Record{Time: time.Now(), Event: audit.EventStepUp})
		if err != nil {
			ts.t.Fatalf("ActivateApprover: %v", err)
		}
	}
	return got
}

// enrollPending registers a for the user of idToken, which leaves it
// pending until an administrator activates it.
func (ts *testServer) enrollPending(a *approver, idToken string) response {
	ts.t.Helper()
	uri := ts.issuer + stepup.PathApprovers
	return ts.post(stepup.PathApprovers, url.Values{"id_token": {idToken}, "name": {"Work phone"}},
		http.Header{"DPoP": {a.device().proof("POST", uri, nil)}})
}

// pending lists a's pending push challenges.
func (ts *testServer) pending(a *approver) response {
	ts.t.Helper()
	uri := ts.issuer + stepup.PathPushChallenges
	req, _ := http.NewRequest(http.MethodGet, uri, nil)
	req.Header.Set("DPoP", a.device().proof("GET", uri, nil))
	return ts.do(req)
}

// approval signs a decision with key, naming kid.
func approval(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(stepup.ApprovalType).WithHeader("kid", kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := claims["iat"]; !ok {
		claims["iat"] = time.Now().Unix()
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// decide posts a's decision on challenge id with number.
func (ts *testServer) decide(a *approver, id, decision string, number int) response {
	ts.t.Helper()
	jws := approval(ts.t, a.key, a.jkt, map[string]any{"challenge_id": id, "decision": decision, "number": number})
	return ts.post(stepup.PathPushChallenges+"/"+id, url.Values{"approval": {jws}}, nil)
}

// stepUpObject returns the step_up member of a challenge answer.
func stepUpObject(t *testing.T, r response) map[string]any {
	t.Helper()
	obj, ok := r.body["step_up"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no step_up object: status %d, body %v", r.status, r.body)
	}
	return obj
}

func spokenNumber(t *testing.T, obj map[string]any) int {
	t.Helper()
	s, _ := obj["spoken_number"].(string)
	if len(s) != 2 {
		t.Fatalf("spoken_number = %q, want two digits", s)
	}
	return int(s[0]-'0')*10 + int(s[1]-'0')
}

// retry repeats form with step_up_challenge=id and a fresh proof from d.
func (ts *testServer) retry(d *device, form url.Values, id string) response {
	ts.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("step_up_challenge", id)
	return ts.post(authz.PathToken, f, http.Header{"DPoP": {d.proof("POST", ts.issuer+authz.PathToken, nil)}})
}

func otherKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func thumbprint(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
