package cassandra

import (
	"context"
	"errors"
	"log/slog"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/heraldhq/herald/internal/retry"
)

// retryPolicy retries idempotent requests (the driver never retries the
// others) with Herald's jittered backoff (internal/retry), indexed by the
// query's attempt count since the driver shares one policy between all
// queries. Unlike the driver's ExponentialBackoffRetryPolicy it stops
// waiting when the request's context ends, so a cancelled call returns
// promptly.
type retryPolicy struct {
	retries int
	backoff retry.Backoff
}

func (p *retryPolicy) Attempt(q gocql.RetryableQuery) bool {
	n := q.Attempts()
	if n > p.retries {
		return false
	}
	ctx := q.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return retry.Sleep(ctx, p.backoff.Attempt(n))
}

// GetRetryType gives up on errors a retry cannot fix and tries the next
// replica for the rest (timeouts, unavailable, overloaded, connection errors).
func (p *retryPolicy) GetRetryType(err error) gocql.RetryType {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeSyntax, gocql.ErrCodeInvalid, gocql.ErrCodeUnauthorized, gocql.ErrCodeConfig,
			gocql.ErrCodeAlreadyExists, gocql.ErrCodeCredentials, gocql.ErrCodeFunctionFailure:
			return gocql.Rethrow
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return gocql.Rethrow
	}
	return gocql.RetryNextHost
}

// driverLogger sends the driver's messages to slog. Its informational
// chatter (host up/down detail, schema events) is logged at debug level.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) log(level slog.Level, msg string, fields []gocql.LogField) {
	if !d.l.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		attrs = append(attrs, slog.Any(f.Name, f.Value.Any()))
	}
	d.l.LogAttrs(context.Background(), level, "gocql: "+msg, attrs...)
}

func (d driverLogger) Error(msg string, fields ...gocql.LogField) {
	d.log(slog.LevelError, msg, fields)
}
func (d driverLogger) Warning(msg string, fields ...gocql.LogField) {
	d.log(slog.LevelWarn, msg, fields)
}
func (d driverLogger) Info(msg string, fields ...gocql.LogField) { d.log(slog.LevelDebug, msg, fields) }
func (d driverLogger) Debug(msg string, fields ...gocql.LogField) {
	d.log(slog.LevelDebug, msg, fields)
}
