package podserve

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-net/palisade/internal/model"
)

func TestServedPorts(t *testing.T) {
	http := []model.ContainerPort{{Port: 80, Protocol: model.TCP}}
	for _, tc := range []struct {
		name string
		pod  model.Pod
		want []model.ContainerPort
	}{
		{"nginx", model.Pod{Images: []string{"nginx"}}, http},
		{"nginx tag", model.Pod{Images: []string{"nginx:1.27"}}, http},
		{"nginx registry", model.Pod{Images: []string{"docker.io/library/nginx"}}, http},
		{"nginx digest", model.Pod{Images: []string{"registry:5000/lib/nginx@sha256:abcd"}}, http},
		{"httpd", model.Pod{Images: []string{"httpd:2.4"}}, http},
		{"unknown image", model.Pod{Images: []string{"busybox"}}, []model.ContainerPort{}},
		{"declared ports win", model.Pod{Images: []string{"nginx"}, Ports: []model.ContainerPort{
			{Name: "b", Port: 53, Protocol: model.UDP}, {Name: "a", Port: 8080, Protocol: model.TCP}, {Name: "c", Port: 8080, Protocol: model.TCP}}},
			[]model.ContainerPort{{Port: 8080, Protocol: model.TCP}, {Port: 53, Protocol: model.UDP}}},
	} {
		if diff := cmp.Diff(tc.want, ServedPorts(&tc.pod)); diff != "" {
			t.Errorf("%s: ServedPorts (-want +got):\n%s", tc.name, diff)
		}
	}
}
