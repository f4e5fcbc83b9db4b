package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Setting is one key of the effective configuration (after defaults and
// environment overrides), as the caller rendered it: Value must already have
// every secret masked. Key is the dotted YAML path, e.g.
// consumers[0].handler.type.
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Masked marks a value replaced or shortened because it holds a secret.
	Masked bool `json:"masked,omitempty"`
}

// settingsJSON is the body of GET /api/settings.
type settingsJSON struct {
	Settings []Setting `json:"settings"`
}

// apiSettings is GET /api/settings: the effective configuration, masked.
func (s *Server) apiSettings(c echo.Context) error {
	list := s.settings
	if list == nil {
		list = []Setting{}
	}
	noStore(c)
	return c.JSON(http.StatusOK, settingsJSON{Settings: list})
}

// settingsGroup is one top-level section of the configuration.
type settingsGroup struct {
	Name string
	Rows []Setting
}

// settingsGroups splits the settings by their first key segment, keeping the
// caller's order; the plain values at the top (listen, amqp_url, ...) form
// one group rather than a heading each.
func settingsGroups(list []Setting) []settingsGroup {
	var out []settingsGroup
	sections := false
	for _, st := range list {
		name := st.Key
		if i := strings.IndexAny(name, ".["); i > 0 {
			name, sections = name[:i], true
		} else if !sections {
			name = "general"
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, settingsGroup{Name: name})
		}
		out[len(out)-1].Rows = append(out[len(out)-1].Rows, st)
	}
	return out
}

// settingsPage is GET /settings: the effective configuration, secrets masked.
func (s *Server) settingsPage(c echo.Context) error {
	body := settingsSection(settingsGroups(s.settings))
	return s.respond(c, http.StatusOK, "settings", body, body)
}
