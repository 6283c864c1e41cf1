package authz

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sotto-auth/sotto/internal/oauth"
)

// metrics are the server's Prometheus metrics. Labels hold decisions,
// reason codes, client-independent results and the catalog version only,
// never a subject, device key, client secret or token.
type metrics struct {
	registry *prometheus.Registry

	exchangeDuration *prometheus.HistogramVec
	decisions        *prometheus.CounterVec
	dpopRejections   *prometheus.CounterVec
	replays          prometheus.Counter
	introspections   *prometheus.CounterVec
	revocations      *prometheus.CounterVec
	revokedTokens    prometheus.Counter
	stepUps          *prometheus.CounterVec
	catalog          *prometheus.GaugeVec
}

func newMetrics(catalogVersion string) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		exchangeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sotto_exchange_duration_seconds",
			Help: "Time from the arrival of a token request to its answer, by decision.",
			// From 0.5 ms, below one exchange's crypto, to 2 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13),
		}, []string{"decision"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_exchange_decisions_total",
			Help: "Token requests by decision (issued, refused, step_up_required) and reason code.",
		}, []string{"decision", "reason"}),
		dpopRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_dpop_refusals_total",
			Help: "Token requests rejected because of their DPoP proof, by reason code.",
		}, []string{"reason"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_dpop_replays_total",
			Help: "DPoP proofs presented a second time and rejected as replays.",
		}),
		introspections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_introspections_total",
			Help: "Introspection requests answered, by result (active, inactive).",
		}, []string{"result"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_revocations_total",
			Help: "Revocation requests carried out, by reason code.",
		}, []string{"reason"}),
		revokedTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_revoked_tokens_total",
			Help: "Access tokens ended by revocation requests.",
		}),
		stepUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_step_up_total",
			Help: "Step-up challenges seen at the token endpoint by outcome: started, completed, denied or abandoned (expired).",
		}, []string{"outcome", "method"}),
		catalog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sotto_catalog_info",
			Help: "The scope catalog version in use, as the version label of a gauge set to 1.",
		}, []string{"version"}),
	}
	m.registry.MustRegister(
		m.exchangeDuration, m.decisions, m.dpopRejections, m.replays,
		m.introspections, m.revocations, m.revokedTokens, m.stepUps, m.catalog,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.catalog.WithLabelValues(catalogVersion).Set(1)
	return m
}

// setCatalog makes version the one catalog version the info gauge names.
func (m *metrics) setCatalog(version string) {
	m.catalog.Reset()
	m.catalog.WithLabelValues(version).Set(1)
}

// observeExchange counts a token request that arrived at start and ended
// with e, or was issued when e is nil. stepUpMethod is the method of the
// step-up that completed an issued exchange, or "".
func (m *metrics) observeExchange(start time.Time, e *oauth.Error, stepUpMethod string) {
	decision, reason := "issued", ""
	if e == nil && stepUpMethod != "" {
		m.stepUps.WithLabelValues("completed", labelValue(stepUpMethod, "")).Inc()
	}
	if e != nil {
		switch e.Reason {
		case "step_up_required":
			if _, started := e.Extra["step_up"]; started {
				m.stepUps.WithLabelValues("started", "").Inc()
			}
		case "step_up_denied":
			m.stepUps.WithLabelValues("denied", "").Inc()
		case "step_up_expired":
			m.stepUps.WithLabelValues("abandoned", "").Inc()
		}
		decision, reason = "refused", labelValue(e.Reason, e.Code)
		if e.Code == "insufficient_user_authentication" {
			decision = "step_up_required"
		}
		if e.Code == "invalid_dpop_proof" || e.Code == "use_dpop_nonce" {
			m.dpopRejections.WithLabelValues(reason).Inc()
		}
		if e.Reason == "dpop_replay" {
			m.replays.Inc()
		}
	}
	m.exchangeDuration.WithLabelValues(decision).Observe(time.Since(start).Seconds())
	m.decisions.WithLabelValues(decision, reason).Inc()
}

// labelValue returns reason, or fallback when reason is empty, as a label
// value. Reason codes are constants of this server, but a value that does
// not look like one becomes "other", so a label can never carry request
// data or grow without bound.
func labelValue(reason, fallback string) string {
	if reason == "" {
		reason = fallback
	}
	if reason == "" || len(reason) > 64 || strings.IndexFunc(reason, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) >= 0 {
		return "other"
	}
	return reason
}
