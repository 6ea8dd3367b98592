// Package app assembles Herald's roles (enricher, router+gateway, API) from
// their packages and runs them: all in one process for `herald dev`, one
// role per process in production. It owns the ordered shutdown: stop
// intake, drain, commit, close.
package app
