// Package podserve serves a lab's pods from one process: for each pod,
// sockets opened inside its network namespace answer on its container
// ports (TCP: HTTP answering Body; UDP: an echo prefixed with Body), as the
// pod's containers would. It is apart from the network code because it is
// the only part of the lab that runs for as long as the lab does (in its
// daemon), following the pods as they come and go.
package podserve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// imagePorts are what well-known images serve, for pods that declare no
// ports. The key is the image's last path element without tag or digest.
var imagePorts = map[string][]model.ContainerPort{
	"nginx": {{Name: "http", Port: 80, Protocol: model.TCP}},
	"httpd": {{Name: "http", Port: 80, Protocol: model.TCP}},
}

// imageBase returns "nginx" for nginx, nginx:1.27, docker.io/library/nginx,
// registry:5000/nginx@sha256:… and the like.
func imageBase(image string) string {
	image, _, _ = strings.Cut(image, "@")
	base := path.Base(image)
	base, _, _ = strings.Cut(base, ":")
	return base
}

// ServedPorts returns the ports the lab serves for a pod: its declared
// container ports, or those of the images it knows (nginx, httpd: TCP 80)
// when it declares none. Sorted, without duplicates.
func ServedPorts(p *model.Pod) []model.ContainerPort {
	ports := p.Ports
	if len(ports) == 0 {
		for _, img := range p.Images {
			ports = append(ports, imagePorts[imageBase(img)]...)
		}
	}
	out := make([]model.ContainerPort, 0, len(ports))
	for _, cp := range ports {
		out = append(out, model.ContainerPort{Port: cp.Port, Protocol: cp.Protocol})
	}
	slices.SortFunc(out, func(a, b model.ContainerPort) int {
		if a.Protocol != b.Protocol {
			return int(a.Protocol) - int(b.Protocol)
		}
		return int(a.Port) - int(b.Port)
	})
	return slices.Compact(out)
}

// Body returns what a pod's TCP servers answer, and the prefix of its UDP
// echoes: "palisade lab: <namespace>/<name>\n".
func Body(k model.Key) string { return "palisade lab: " + k.String() + "\n" }

// Servers serves the lab's pods from this process: for each pod, listening
// sockets created inside its namespace (TCP: HTTP/1.1 on any path answering
// Body; UDP: an echo of each datagram prefixed with Body). SCTP ports are
// not served (the kernel here has no SCTP; see sctpSupported).
type Servers struct {
	log  *slog.Logger
	mu   sync.Mutex
	pods map[model.Key]*podServers
	// sctpWarned is set once the missing SCTP support has been logged.
	sctpWarned bool
}

type podServers struct {
	netns   string
	id      nsID // which namespace: a rebuilt pod reuses the path
	ports   []model.ContainerPort
	closers []io.Closer
	wg      sync.WaitGroup
}

// New returns servers that serve nothing yet; Sync gives them pods. log
// receives warnings.
func New(log *slog.Logger) *Servers {
	return &Servers{log: log, pods: map[model.Key]*podServers{}}
}

// Sync makes the servers those of pods: new pods start, removed ones stop,
// pods whose ports or namespace changed restart. netnsOf returns the path
// of a pod's network namespace ("" while it has none). Errors (a port
// already taken in a host-network pod) are returned together, and the
// other servers keep running.
func (s *Servers) Sync(pods []*model.Pod, netnsOf func(model.Key) string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[model.Key]*model.Pod{}
	for _, p := range pods {
		want[p.Key()] = p
	}
	for k, ps := range s.pods {
		p := want[k]
		path := netnsOf(k)
		if p == nil || !slices.Equal(ps.ports, ServedPorts(p)) || ps.netns != path || ps.id != namespaceID(path) {
			ps.close()
			delete(s.pods, k)
		}
	}
	var errs []error
	for _, p := range pods {
		k := p.Key()
		if s.pods[k] != nil || netnsOf(k) == "" {
			continue
		}
		ps, err := s.start(k, netnsOf(k), ServedPorts(p))
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", k, err))
		}
		s.pods[k] = ps
	}
	return errors.Join(errs...)
}

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

// namespaceID returns the identity of the namespace bound at path (zero if
// there is none).
func namespaceID(path string) nsID {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nsID{}
	}
	return nsID{st.Dev, st.Ino}
}

// Close stops every server and waits for them.
func (s *Servers) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ps := range s.pods {
		ps.close()
		delete(s.pods, k)
	}
	return nil
}

func (ps *podServers) close() {
	for _, c := range ps.closers {
		c.Close()
	}
	ps.wg.Wait()
}

// start opens a pod's sockets inside its namespace, then serves them from
// ordinary goroutines (a socket stays in the namespace it was made in).
func (s *Servers) start(k model.Key, nsPath string, ports []model.ContainerPort) (*podServers, error) {
	ps := &podServers{netns: nsPath, id: namespaceID(nsPath), ports: ports}
	var tcp []net.Listener
	var udp []net.PacketConn
	var errs []error
	err := netns.Do(nsPath, func() error {
		for _, cp := range ports {
			addr := fmt.Sprintf(":%d", cp.Port)
			switch cp.Protocol {
			case model.TCP:
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				tcp = append(tcp, ln)
			case model.UDP:
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				udp = append(udp, pc)
			case model.SCTP:
				if !s.sctpWarned {
					s.sctpWarned = true
					why := "not implemented by the lab"
					if !sctpSupported() {
						why = "the kernel has no SCTP"
					}
					s.log.Warn("SCTP ports are not served: "+why, "pod", k, "port", cp.Port)
				}
			}
		}
		return nil
	})
	if err != nil {
		return ps, err
	}
	body := Body(k)
	for _, ln := range tcp {
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				io.WriteString(w, body)
			}),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       30 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		ps.closers = append(ps.closers, srv)
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			srv.Serve(ln)
		}()
	}
	for _, pc := range udp {
		ps.closers = append(ps.closers, pc)
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			echo(pc, body)
		}()
	}
	return ps, errors.Join(errs...)
}

// echo answers each datagram on pc with prefix followed by the datagram,
// until pc is closed.
func echo(pc net.PacketConn, prefix string) {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP errors surfacing on the socket
		}
		pc.WriteTo(append([]byte(prefix), buf[:n]...), from)
	}
}

// sctpSupported reports whether this kernel can open SCTP sockets (in the
// caller's namespace; support is a property of the kernel).
func sctpSupported() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}
