package app

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/policy"
	"github.com/prometheus/client_golang/prometheus"
)

// The notification policy (package policy) is read from the --config
// file's policy: section at start and again on SIGHUP, without a restart:
// the enricher asks for the policy in force once per batch, so a reload
// takes effect at the next batch. A reload that fails (the file no longer
// parses, or its policy is invalid) keeps the policy in force and logs
// why; herald_policy_reloads_total counts both outcomes. Only the policy
// reloads: every other setting keeps the value the process started with.

// initPolicy sets the policy of the Config and starts the SIGHUP watcher,
// once per process (herald dev and the enricher role call it).
func (p *Process) initPolicy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reloads != nil {
		return nil
	}
	pol, err := p.cfg.PolicySettings()
	if err != nil {
		return err
	}
	p.policy.Store(pol)
	p.reloads = metrics.Register(p.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "policy_reloads_total",
		Help: "Reloads of the notification policy on SIGHUP, by result (ok, error: the policy in force was kept).",
	}, []string{"result"}))
	if types := pol.Types(); len(types) > 0 {
		p.log.Info("notification policy in force", "types", types)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	p.g.Go(func() error {
		defer signal.Stop(hup)
		for {
			select {
			case <-p.ctx.Done():
				return nil
			case <-hup:
				_ = p.ReloadPolicy()
			}
		}
	})
	return nil
}

// Policy is the notification policy in force; nil before initPolicy.
func (p *Process) Policy() *policy.Policy { return p.policy.Load() }

// ReloadPolicy reads the policy of the --config file again and puts it in
// force; on error the policy in force is kept, and the error is logged
// and returned. Without a --config file the policy is the empty one.
func (p *Process) ReloadPolicy() error {
	var (
		pol *policy.Policy
		err error
	)
	if p.cfg.File == "" {
		pol, err = policy.New(policy.Config{})
	} else {
		pol, err = config.ReadPolicy(p.cfg.File)
	}
	if err != nil {
		p.reloads.WithLabelValues("error").Inc()
		p.log.Error("policy reload failed; keeping the policy in force", "file", p.cfg.File, "err", err)
		return err
	}
	p.policy.Store(pol)
	p.reloads.WithLabelValues("ok").Inc()
	p.log.Info("policy reloaded", "file", p.cfg.File, "types", pol.Types())
	return nil
}
