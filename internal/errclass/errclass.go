// Package errclass sorts the errors of Herald's pipeline into the three
// things a loop can do about them: retry (Transient), give up on one record
// or one user and move on (Permanent: dead-letter with the reason), or stop
// and let the supervisor rebuild the component (Fatal).
//
// Code that knows better marks its errors with Transient, Permanent or
// Fatal; Of reads the mark, or classifies known errors: context errors,
// Kafka protocol errors (kerr) by their Retriable flag and the fencing
// family, validation errors of the contract. Anything else is Transient:
// retrying is the safe default when nothing says otherwise.
package errclass

import (
	"context"
	"errors"

	herald "github.com/heraldhq/herald"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Class is what to do about an error. The zero value is ClassTransient.
type Class uint8

// The classes, from the mildest.
const (
	// ClassTransient: retry the same work later, with backoff.
	ClassTransient Class = iota
	// ClassPermanent: this record, or this user, can never succeed;
	// dead-letter it with the reason and go on with the rest.
	ClassPermanent
	// ClassFatal: the component cannot go on (its transactional producer
	// was fenced, its client closed); return and be rebuilt.
	ClassFatal
)

func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassPermanent:
		return "permanent"
	case ClassFatal:
		return "fatal"
	}
	return "unknown"
}

// classified is an error marked with its class.
type classified struct {
	err   error
	class Class
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

func mark(err error, c Class) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: c}
}

// Transient marks err as worth retrying; nil stays nil.
func Transient(err error) error { return mark(err, ClassTransient) }

// Permanent marks err as never going to succeed for the record or user at
// hand; nil stays nil.
func Permanent(err error) error { return mark(err, ClassPermanent) }

// Fatal marks err as the end of the component; nil stays nil.
func Fatal(err error) error { return mark(err, ClassFatal) }

// Of returns the class of err: the outermost mark in its chain if any,
// else the class of the first known error in it, else ClassTransient
// (also for nil: check err first).
//
// Known errors: context.Canceled and context.DeadlineExceeded are
// transient (the caller's own context tells shutdown apart); a
// *herald.ValidationError is permanent (the same input fails the same
// way); kgo.ErrClientClosed and the Kafka errors that end a transactional
// producer (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH,
// INVALID_PRODUCER_ID_MAPPING, TRANSACTIONAL_ID_AUTHORIZATION_FAILED) are
// fatal; any other Kafka error is transient if Kafka calls it retriable
// and permanent otherwise.
func Of(err error) Class {
	if err == nil {
		return ClassTransient
	}
	if c, ok := errors.AsType[*classified](err); ok {
		return c.class
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassTransient
	case errors.Is(err, kgo.ErrClientClosed),
		errors.Is(err, kerr.ProducerFenced),
		errors.Is(err, kerr.InvalidProducerEpoch),
		errors.Is(err, kerr.InvalidProducerIDMapping),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return ClassFatal
	}
	if _, ok := herald.AsValidationError(err); ok {
		return ClassPermanent
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		if ke.Retriable {
			return ClassTransient
		}
		return ClassPermanent
	}
	return ClassTransient
}

// Retriable reports whether err is worth retrying: a non-nil error of
// ClassTransient.
func Retriable(err error) bool { return err != nil && Of(err) == ClassTransient }

// IsPermanent reports whether err is a non-nil error of ClassPermanent.
func IsPermanent(err error) bool { return err != nil && Of(err) == ClassPermanent }

// IsFatal reports whether err is a non-nil error of ClassFatal.
func IsFatal(err error) bool { return err != nil && Of(err) == ClassFatal }
