package engine_test

import (
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
)

// FuzzEvaluate decodes the input into a small cluster with policies (the
// generator of gen_test.go reading its choices from the bytes), a
// connection, one edit and a second connection. It checks that nothing
// panics, that Allowed agrees with Explain and with the naive oracle, that
// the verdict is consistent, and after the edit that the incremental
// engine agrees with a rebuild.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("palisade"))
	f.Add([]byte{
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
	})
	for _, seed := range [][]byte{
		// Several pods and policies with every kind of peer and port.
		{200, 50, 3, 99, 7, 8, 250, 1, 1, 7, 30, 40, 80, 3, 3, 3, 2, 1, 0, 9, 44, 91, 17, 63, 12, 8, 2, 0, 1, 99, 100, 101, 7, 7, 7, 5, 3, 1, 200, 199, 198, 2, 3, 4, 77, 78, 79, 9, 10},
		{8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
		{255, 254, 253, 252, 251, 250, 249, 248, 247, 246, 245, 244, 243, 242, 241, 240, 239, 238, 237, 236, 235, 234, 233, 232, 231, 230, 229, 228, 227, 226},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &fixture.Gen{Src: fixture.NewByteSource(data)}
		c := g.Cluster()
		e := engine.FromCluster(c)
		check := func(stage string, e, fresh *engine.Engine) {
			eps := endpoints(c, e)
			from, to := fixture.PickOne(g, eps), fixture.PickOne(g, eps)
			if from.IP.Is4() != to.IP.Is4() {
				return
			}
			pp := fixture.PickOne(g, probePorts)
			conn := engine.Conn{From: from, To: to, Protocol: pp.proto, Port: pp.port}
			got := e.Allowed(conn)
			v := e.Explain(conn)
			if v.Allowed != got {
				t.Fatalf("%s: Explain(%s).Allowed = %v, Allowed = %v\n%s", stage, connString(conn), v.Allowed, got, dumpCluster(c))
			}
			if want := naiveAllowed(c, conn); got != want {
				t.Fatalf("%s: Allowed(%s) = %v, naive oracle says %v\n%s%s", stage, connString(conn), got, want, describeVerdict(v), dumpCluster(c))
			}
			if err := checkVerdict(v); err != nil {
				t.Fatalf("%s: Explain(%s): %v\n%s", stage, connString(conn), err, describeVerdict(v))
			}
			if fresh != nil {
				if rebuilt := fresh.Allowed(conn); rebuilt != got {
					t.Fatalf("%s: Allowed(%s) = %v incrementally, %v after a rebuild\n%s", stage, connString(conn), got, rebuilt, dumpCluster(c))
				}
			}
		}
		check("initial", e, nil)
		edit := edit(g, c, e)
		e.TakeChanges()
		check("after "+edit, e, engine.FromCluster(c))
	})
}
