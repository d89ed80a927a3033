package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestUnreachable(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("Get \"https://127.0.0.1:6443/api/v1/pods\": dial tcp: %w", syscall.ECONNREFUSED), true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"EOF", io.EOF, true},
		{"503 while starting", apierrors.NewServiceUnavailable("etcd not ready"), true},
		{"410 Gone: the reflector lists again", apierrors.NewResourceExpired("too old resource version"), false},
		{"403", apierrors.NewForbidden(pods, "", errors.New("RBAC")), false},
		{"429: the client and the reflector back off", apierrors.NewTooManyRequests("slow down", 1), false},
		{"500", apierrors.NewInternalError(errors.New("boom")), false},
	} {
		if got := unreachable(tc.err); got != tc.want {
			t.Errorf("%s: unreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// untilReachable calls again while the server cannot be reached, returns
// its first answer, and stops when ctx ends.
func TestUntilReachable(t *testing.T) {
	s := NewSource(nil, SourceOptions{})
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	gone := apierrors.NewResourceExpired("gone")
	for _, tc := range []struct {
		name    string
		errs    []error // what successive calls return; nil at the end: success
		want    error
		calls   int
		failing bool // the source's health still records a failure
	}{
		{"answer at once", []error{nil}, nil, 1, false},
		{"refused twice, then an answer", []error{refused, refused, nil}, nil, 3, false},
		{"refused, then 410: returned to the reflector", []error{refused, gone}, gone, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.failing = map[string]failure{}
			calls := 0
			_, err := untilReachable(context.Background(), s, "pods", func(context.Context) (int, error) {
				calls++
				return 0, tc.errs[calls-1]
			})
			if !errors.Is(err, tc.want) || calls != tc.calls {
				t.Errorf("got %v after %d calls, want %v after %d", err, calls, tc.want, tc.calls)
			}
			if _, f := s.failing["pods"]; f != tc.failing {
				t.Errorf("failing recorded: %v, want %v", f, tc.failing)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := untilReachable(ctx, s, "pods", func(context.Context) (int, error) {
		calls++
		if calls == 3 {
			cancel()
		}
		return 0, refused
	})
	if !errors.Is(err, syscall.ECONNREFUSED) || calls != 3 {
		t.Errorf("after cancel: %v after %d calls, want the last error after 3", err, calls)
	}
}
