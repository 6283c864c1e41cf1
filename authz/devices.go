package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sotto-auth/sotto/audit"
	"github.com/sotto-auth/sotto/config"
	"github.com/sotto-auth/sotto/devicebind"
	"github.com/sotto-auth/sotto/exchange"
	"github.com/sotto-auth/sotto/internal/oauth"
	"github.com/sotto-auth/sotto/storage"
)

// DeviceStore is the device registry and the shared settings the server
// needs.
type DeviceStore interface {
	devicebind.SettingStore
	exchange.DeviceStore
	EnrollDevice(ctx context.Context, w storage.EnrollWrite) (*storage.Device, bool, error)
}

// DeviceKinds are the kinds of device the enrolment endpoint accepts.
var DeviceKinds = []string{"phone", "laptop", "headset", "speaker", "car", "other"}

// maxDeviceNameBytes bounds the display name of a device.
const maxDeviceNameBytes = 128

// enrolRequest is the JSON body of an enrolment.
type enrolRequest struct {
	SubjectToken string `json:"subject_token"`
	Kind         string `json:"kind"`
	Name         string `json:"name"`
	Attestation  string `json:"attestation"`
}

// deviceJSON is the JSON form of a device in responses.
type deviceJSON struct {
	JKT        string    `json:"jkt"`
	Subject    string    `json:"subject"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	Trust      string    `json:"trust"`
	EnrolledAt time.Time `json:"enrolled_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// handleEnrol enrols the key of the DPoP proof as a device of the user
// whose corporate ID token the body contains. It verifies the proof (RFC
// 9449 §4.3), the subject token and the optional attestation, then stores
// the device, the proof claim and the audit record in one transaction.
func (s *Server) handleEnrol(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.now()

	req, err := s.parseEnrol(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}

	proof, err := s.exchange.DPoP.Verify(devicebind.Request{
		Headers: r.Header.Values("DPoP"),
		Method:  r.Method,
		URI:     s.cfg.Issuer + PathDevices,
	})
	var pe *devicebind.Error
	switch {
	case errors.Is(err, devicebind.ErrMissing):
		s.writeError(w, r, oauth.New(oauth.CodeInvalidDPoPProof, "dpop_missing",
			"Enrolment needs a DPoP proof signed by the device key for POST to this endpoint (RFC 9449 §4)."))
		return
	case errors.As(err, &pe):
		s.writeError(w, r, oauth.New(oauth.CodeInvalidDPoPProof, "dpop_"+pe.Check, pe.Description))
		return
	case err != nil:
		s.writeError(w, r, oauth.ServerError(err))
		return
	}

	subject, err := s.subjects.Verify(ctx, req.SubjectToken)
	var se *exchange.SubjectError
	switch {
	case errors.As(err, &se):
		s.writeError(w, r, oauth.InvalidRequest("subject_"+se.Check, "The subject_token was rejected: "+se.Description))
		return
	case err != nil:
		s.writeError(w, r, oauth.ServerError(err))
		return
	}

	trust := storage.TrustRegistered
	if req.Attestation != "" {
		if _, err := s.attest.Verify(ctx, req.Attestation, proof.JKT); err != nil {
			if errors.As(err, &se) {
				s.writeError(w, r, oauth.InvalidRequest("attestation_"+se.Check, "The attestation was rejected: "+se.Description))
			} else {
				s.writeError(w, r, oauth.ServerError(err))
			}
			return
		}
		trust = storage.TrustManaged
	}

	window := time.Duration(s.cfg.DPoP.IATWindow)
	device, created, err := s.store.EnrollDevice(ctx, storage.EnrollWrite{
		Device: storage.Device{
			JKT: proof.JKT, Subject: subject.ID, Kind: req.Kind, Name: req.Name, Trust: trust, EnrolledAt: now,
		},
		Proof: &storage.ProofClaim{JKT: proof.JKT, JTI: proof.JTI, ExpiresAt: proof.IssuedAt.Add(window + time.Minute)},
		Audit: audit.Record{
			Time: now.UTC(), RequestID: oauth.RequestID(ctx), Event: audit.EventDeviceEnrolment,
			Subject: subject.ID, SubjectIssuer: subject.Issuer, DeviceJKT: proof.JKT,
			Decision: audit.DecisionEnrolled, Detail: req.Kind + " device " + req.Name,
		},
	})
	switch {
	case errors.Is(err, storage.ErrProofReplayed):
		s.writeError(w, r, oauth.New(oauth.CodeInvalidDPoPProof, "dpop_replay",
			"The DPoP proof was already used: sign a new proof with a fresh jti (RFC 9449 §11.1)."))
		return
	case errors.Is(err, storage.ErrDeviceOtherSubject):
		e := oauth.New("access_denied", "device_other_subject",
			"This device key is enrolled for another user; generate a new DPoP key on the device and enrol that one.")
		e.Status = http.StatusConflict
		s.writeError(w, r, e)
		return
	case errors.Is(err, storage.ErrDeviceRevoked):
		e := oauth.New("access_denied", "device_revoked",
			"This device key was revoked and cannot be enrolled again; generate a new DPoP key on the device.")
		e.Status = http.StatusConflict
		s.writeError(w, r, e)
		return
	case err != nil:
		s.writeError(w, r, oauth.ServerError(err))
		return
	}

	s.logger.InfoContext(ctx, "device enrolled", "request_id", oauth.RequestID(ctx),
		"device_jkt", device.JKT, "subject", device.Subject, "trust", device.Trust, "created", created)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, deviceJSON{
		JKT: device.JKT, Subject: device.Subject, Kind: device.Kind, Name: device.Name,
		Trust: device.Trust, EnrolledAt: device.EnrolledAt, LastSeenAt: device.LastSeenAt,
	})
}

// parseEnrol reads and checks the JSON body of an enrolment.
func (s *Server) parseEnrol(r *http.Request) (*enrolRequest, error) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return nil, oauth.InvalidRequest("content_type", "Send the enrolment as a JSON object with Content-Type application/json.")
	}
	var req enrolRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			e := oauth.InvalidRequest("body_too_large", fmt.Sprintf("The body is larger than %d bytes.", s.cfg.HTTP.MaxBodyBytes))
			e.Status = http.StatusRequestEntityTooLarge
			return nil, e
		}
		return nil, oauth.InvalidRequest("body_invalid",
			"The body is not a JSON object with only subject_token, kind, name and attestation.")
	}
	req.Kind = strings.ToLower(strings.TrimSpace(req.Kind))
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.SubjectToken == "":
		return nil, oauth.InvalidRequest("subject_token_missing", "The subject_token member is missing: send the corporate ID token of the user.")
	case !slices.Contains(DeviceKinds, req.Kind):
		return nil, oauth.InvalidRequest("kind_invalid", "The kind member must be one of "+strings.Join(DeviceKinds, ", ")+".")
	case req.Name == "" || len(req.Name) > maxDeviceNameBytes || !utf8.ValidString(req.Name):
		return nil, oauth.InvalidRequest("name_invalid", fmt.Sprintf("The name member must be 1 to %d bytes of UTF-8, such as Kitchen speaker.", maxDeviceNameBytes))
	}
	return &req, nil
}

func deviceAttesters(cfg *config.Config) []exchange.Attester {
	out := make([]exchange.Attester, 0, len(cfg.DeviceAttesters))
	for _, a := range cfg.DeviceAttesters {
		out = append(out, exchange.Attester{
			Issuer: a.Issuer, Audience: a.Audience, JWKSFile: a.JWKSFile, JWKSURI: a.JWKSURI,
			Algorithms: signatureAlgorithms(a.Algorithms),
		})
	}
	return out
}
