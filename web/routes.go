package web

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes is the one route table of the server. Every route, unknown ones
// included, first checks the Host header (see hostPolicy).
//
// HTML: GET / (overview), /queues, /queues/{vhost}/{name}, /consumers,
// /consumers/{name}, /alerts, /audit, /settings. Each returns a full page,
// or with HX-Request the fragment the page refreshes (Vary: HX-Request).
// /queues and /api/queues take page, per_page, sort, order, q, vhost and
// status (see queues.go); /queues with HX-Target queue-list returns the list
// alone.
// The queue and consumer pages take ?range=15m|1h|6h|24h|7d|90d (400
// otherwise); their charts panel alone is GET .../charts?range=R.
//
// Every route but /healthz, /readyz and /static/ needs a user when auth is
// configured, and every state-changing request the operator role (see
// authenticate); operator actions are recorded in the audit log (audit.go).
//
// UI controls (htmx forms, CSRF token required, answer with the consumer row):
// POST /ui/consumers/{name}/concurrency|prefetch|pause|resume. Alert
// controls answer with their panel of /alerts: POST /ui/alerts/{id}/ack,
// /ui/silences, /ui/silences/{id}/expire, /ui/webhooks/{name}/test.
//
// Every response carries X-Warren-Build (see sendBuild).
//
// GET /alerts?recent=N shortens the alert history (the dashboard's panel).
//
// JSON API: see DESIGN.md; GET /api/alerts?state=all adds the recent history
// (resolved alerts too) to the firing ones. State-changing /api requests with Content-Type
// application/json are exempt from the CSRF token (see csrfSkipper).
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError

	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic in http handler", "path", c.Path(), "error", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.requestLogger())
	e.Use(securityHeaders)
	e.Use(s.sendBuild)
	e.Use(s.checkHost) // every route, 404s included: see hostPolicy
	// Who is asking, and viewers may not change anything (before any
	// handler and the CSRF check): see authenticate.
	e.Use(s.authenticate)
	e.Use(middleware.BodyLimit("1M"))
	e.Use(s.csrf())

	// Pages and their refresh fragments.
	e.GET("/", s.overview)
	e.GET("/queues", s.queuesPage)
	e.GET("/queues/:vhost/:name", s.queuePage)
	e.GET("/queues/:vhost/:name/charts", s.queueChartsFragment)
	e.GET("/consumers", s.consumersPage)
	e.GET("/consumers/:name", s.consumerPage)
	e.GET("/consumers/:name/charts", s.consumerChartsFragment)
	e.GET("/audit", s.auditPage)
	e.GET("/settings", s.settingsPage)
	e.GET("/alerts", s.alertsPage)

	// Dashboard controls.
	ui := e.Group("/ui/consumers/:name")
	ui.POST("/concurrency", s.uiConcurrency)
	ui.POST("/prefetch", s.uiPrefetch)
	ui.POST("/pause", s.uiPause)
	ui.POST("/resume", s.uiResume)
	e.POST("/ui/alerts/:id/ack", s.uiAckAlert)
	e.POST("/ui/silences", s.uiCreateSilence)
	e.POST("/ui/silences/:id/expire", s.uiExpireSilence)
	e.POST("/ui/webhooks/:name/test", s.uiTestWebhook)

	// JSON API.
	api := e.Group("/api")
	api.GET("/queues", s.apiQueues)
	api.GET("/queues/:vhost/:name", s.apiQueue)
	api.GET("/consumers", s.apiConsumers)
	api.GET("/consumers/:name", s.apiConsumer)
	api.GET("/consumers/:name/types", s.apiConsumerTypes)
	api.PATCH("/consumers/:name", s.apiPatchConsumer)
	api.POST("/consumers/:name/pause", s.apiPause)
	api.POST("/consumers/:name/resume", s.apiResume)
	api.GET("/alerts", s.apiAlerts)
	api.GET("/audit", s.apiAudit)
	api.GET("/settings", s.apiSettings)
	api.POST("/alerts/:id/ack", s.apiAckAlert)
	api.POST("/silences", s.apiCreateSilence)
	api.GET("/silences", s.apiSilences)
	api.DELETE("/silences/:id", s.apiExpireSilence)
	api.GET("/deliveries", s.apiDeliveries)
	api.POST("/webhooks/:name/test", s.apiTestWebhook)

	// Operations.
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	// Some load balancers probe with HEAD.
	e.HEAD("/healthz", s.healthz)
	e.HEAD("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{
		ErrorLog:      promErrorLog{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	})))

	// Front-end files.
	st := e.Group("/static", middleware.GzipWithConfig(middleware.GzipConfig{MinLength: 1024}))
	st.GET("/*", s.staticFile)
	return e
}
