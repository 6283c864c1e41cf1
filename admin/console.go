package admin

import "github.com/gorilla/mux"

type console struct{ api *api }

func newConsole(a *api) *console { return &console{api: a} }

func (c *console) routes(r *mux.Router) {}
