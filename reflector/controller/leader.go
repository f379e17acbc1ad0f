package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaseName is the Lease every copy competes for. It cannot be generated:
// all copies must name the same one.
const leaseName = "demo-controller"

// election holds the -leader-elect flags.
type election struct {
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

// validate applies leaderelection's own rules (NewLeaderElector checks
// them; RunOrDie panics on them), plus one of the Lease: it stores the
// duration in whole seconds (leaseDurationSeconds), so 1.5s would become 1.
func (e election) validate() error {
	if e.leaseDuration%time.Second != 0 {
		return fmt.Errorf("-lease-duration %s: the Lease stores whole seconds", e.leaseDuration)
	}
	_, err := leaderelection.NewLeaderElector(e.config(&resourcelock.LeaseLock{LockConfig: resourcelock.ResourceLockConfig{Identity: "check"}},
		leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {}}))
	if err != nil {
		return fmt.Errorf("-lease-duration %s, -renew-deadline %s, -retry-period %s: %w", e.leaseDuration, e.renewDeadline, e.retryPeriod, err)
	}
	return nil
}

func (e election) config(lock resourcelock.Interface, callbacks leaderelection.LeaderCallbacks) leaderelection.LeaderElectionConfig {
	return leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: e.leaseDuration, // written into the Lease as leaseDurationSeconds; a standby waits the holder's value after the last change it saw
		RenewDeadline: e.renewDeadline, // the leader gives up if it cannot renew for this long
		RetryPeriod:   e.retryPeriod,   // how often everyone tries (with up to 120% jitter for standbys)
		// When renew ends, the leader writes an empty holder with a 1 s
		// duration (tryRelease, only if its last observed record still
		// names it), so a standby takes over at its next try instead of
		// waiting out the lease. Only safe if our work has stopped first.
		// On Ctrl-C, lead() cancels the elector after the workers returned.
		// On a lost Lease, renew calls release() BEFORE Run cancels the
		// OnStartedLeading context (leaderelection.go, Run and renew), so
		// checkedLock.Update stops the workers and waits for them before
		// it writes the release.
		ReleaseOnCancel: true,
		Name:            leaseName,
		Callbacks:       callbacks,
	}
}

// identity is unique per copy: two copies on one host must differ.
func identity() string {
	host, _ := os.Hostname()
	return host + "_" + string(uuid.NewUUID())
}

// lead runs work while this copy holds the Lease ns/demo-controller. It
// returns nil when ctx ends, after work has returned and the Lease has been
// released (and deleted if nobody took it meanwhile), or an error when the
// Lease was lost or cannot be used.
func (e election) lead(ctx context.Context, out io.Writer, cs kubernetes.Interface, ns, id string, work func(context.Context)) error {
	// The elector's context is not cancelled by Ctrl-C directly: the
	// Lease may be released only once work has stopped.
	electorCtx, stopElector := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopElector(nil)
	lock := &checkedLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: leaseName, Namespace: ns},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
			Labels:     map[string]string{partOfKey: partOfValue},
		},
		giveUp: stopElector,
	}
	var leading atomic.Bool
	workDone := make(chan struct{})
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	lock.beforeRelease = func(ctx context.Context) {
		stopWork()
		if leading.Load() {
			select {
			case <-workDone:
			case <-ctx.Done(): // release()'s -renew-deadline: then it fails, and the Lease expires instead
			}
		}
	}
	le, err := leaderelection.NewLeaderElector(e.config(lock, leaderelection.LeaderCallbacks{
		OnStartedLeading: func(leaderCtx context.Context) {
			defer close(workDone)
			leading.Store(true)
			fmt.Fprintln(out, "  this copy holds the Lease: starting the workers")
			// work ends on Ctrl-C (ctx), before a release (workCtx), or
			// when the elector stops (leaderCtx).
			wctx, cancel := context.WithCancel(leaderCtx)
			defer context.AfterFunc(workCtx, cancel)()
			work(wctx)
			cancel()
		},
		OnStoppedLeading: func() {},
		OnNewLeader: func(holder string) {
			if holder != id {
				fmt.Fprintf(out, "  the Lease is held by %s: this copy waits\n", holder)
			}
		},
	}))
	if err != nil {
		return err // validate() ran before
	}
	fmt.Fprintf(out, "  this copy is %s; it competes for Lease %s/%s\n", id, ns, leaseName)
	electorDone := make(chan struct{})
	go func() {
		defer close(electorDone)
		le.Run(electorCtx)
	}()
	select {
	case <-ctx.Done():
		if leading.Load() {
			<-workDone // the workers have drained and returned
		}
		stopElector(nil) // now release the Lease
		<-electorDone
		return deleteFreeLease(ctx, out, cs, ns)
	case <-electorDone: // the elector gave up: the Lease was lost, or checkedLock gave up
		if leading.Load() {
			<-workDone
		}
		if cause := context.Cause(electorCtx); cause != nil {
			return cause
		}
		return fmt.Errorf("lost the Lease %s/%s: could not renew it within -renew-deadline %s", ns, leaseName, e.renewDeadline)
	}
}

// deleteFreeLease deletes the Lease if it is free (released, no holder),
// with a resourceVersion precondition: if another copy takes it between
// our read and our delete, the server refuses (409) and we leave it.
func deleteFreeLease(ctx context.Context, out io.Writer, cs kubernetes.Interface, ns string) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	leases := cs.CoordinationV1().Leases(ns)
	lease, err := leases.Get(cctx, leaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease %s: %w", leaseName, explain(err))
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		fmt.Fprintf(out, "  Lease %s is held by %s now: left in place\n", leaseName, *h)
		return nil
	}
	err = leases.Delete(cctx, leaseName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &lease.ResourceVersion}})
	switch {
	case err == nil:
		fmt.Fprintf(out, "  released and deleted Lease %s: nobody else held it\n", leaseName)
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		// Another copy deleted it, or took it just now.
	default:
		return fmt.Errorf("delete lease %s: %w", leaseName, explain(err))
	}
	return nil
}

// checkedLock ends the election on an error that retrying cannot cure
// (403, a missing namespace); the elector itself would log it and retry
// for ever. NotFound on Get (no Lease yet) and Conflict on Update (another
// copy was faster) are part of the protocol.
type checkedLock struct {
	resourcelock.Interface
	giveUp        context.CancelCauseFunc
	beforeRelease func(context.Context) // stops the workers and waits for them
}

func (l *checkedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r, raw, err := l.Interface.Get(ctx)
	l.check("get", err)
	return r, raw, err
}

func (l *checkedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, ler)
	if apierrors.IsNotFound(err) { // the namespace
		l.giveUp(fmt.Errorf("create lease %s: %w", leaseName, err))
	}
	l.check("create", err)
	return err
}

func (l *checkedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if ler.HolderIdentity == "" && l.beforeRelease != nil {
		l.beforeRelease(ctx) // a release (tryRelease): renewals name a holder
	}
	err := l.Interface.Update(ctx, ler)
	l.check("update", err)
	return err
}

// check gives up on 401 and 403. Anything else (the API server restarting,
// a timeout) the elector retries; if that takes longer than the renew
// deadline, the leader loses the Lease.
func (l *checkedLock) check(verb string, err error) {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		l.giveUp(fmt.Errorf("%s lease %s: %w", verb, leaseName, explain(err)))
	}
}
