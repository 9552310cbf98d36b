package objread

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/ferryio/ferry/backends"
)

// Retry says how often and how patiently a failed ranged GET is tried again.
type Retry struct {
	// MaxAttempts is the number of tries of one range without progress,
	// the first included; default 5. 1 disables retrying. A try that
	// delivered some bytes before failing starts the count afresh, since
	// the next try resumes where it stopped.
	MaxAttempts int
	// InitialInterval is the first wait, default 200ms; each further wait
	// grows by 2x up to MaxInterval (default 10s), each randomised by
	// ±50% (jitter).
	InitialInterval time.Duration
	MaxInterval     time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 5
	}
	if r.InitialInterval <= 0 {
		r.InitialInterval = 200 * time.Millisecond
	}
	if r.MaxInterval <= 0 {
		r.MaxInterval = 10 * time.Second
	}
	if r.MaxInterval < r.InitialInterval {
		r.MaxInterval = r.InitialInterval
	}
	return r
}

// IsTransient reports whether err may go away when the same read is tried
// again: everything except a context cancellation, a cause that the store's
// answer makes final (backends.ErrNotExist, ErrPrecondition, ErrPermission,
// ErrInvalidRange, ErrInvalidKey, ErrNoBucket) and a nil error. A
// context.DeadlineExceeded counts as transient here (it may be a driver's
// per-request timeout); the retry loop itself stops as soon as the
// caller's context is done.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, final := range []error{
		backends.ErrNotExist, backends.ErrPrecondition, backends.ErrPermission,
		backends.ErrInvalidRange, backends.ErrInvalidKey, backends.ErrNoBucket,
	} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}

// retrier runs one range's tries: attempt is called until it succeeds, its
// error is not transient, the attempts are used up or ctx is done.
type retrier struct {
	r   Retry
	log *slog.Logger
}

// do calls attempt until it returns nil or a final error. attempt reports
// whether it made progress (then the attempt count and the backoff start
// again). The error returned is attempt's last error, or ctx's cause when
// the context ended the waiting.
func (rt retrier) do(ctx context.Context, what func() []slog.Attr, attempt func() (progressed bool, err error)) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(rt.r.InitialInterval),
		backoff.WithMaxInterval(rt.r.MaxInterval),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	tries := 0
	for {
		progressed, err := attempt()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe finalError
		if errors.As(err, &fe) {
			return fe.err
		}
		if progressed {
			tries = 0
			bo.Reset()
		}
		tries++
		if !IsTransient(err) || tries >= rt.r.MaxAttempts {
			return err
		}
		wait := bo.NextBackOff()
		if rt.log != nil {
			rt.log.LogAttrs(ctx, slog.LevelDebug, "objread: retrying ranged read",
				append(what(),
					slog.Int("attempt", tries+1), slog.Int("max_attempts", rt.r.MaxAttempts),
					slog.Duration("wait", wait), slog.Any("err", err))...)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// finalError marks an error that did not come from the store (writing the
// destination failed): it is returned at once, unwrapped, never retried.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }
func (e finalError) Unwrap() error { return e.err }
